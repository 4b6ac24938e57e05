//! `--html`: the timeline page. A structural test always runs (the page is whole, self-contained, and its data is the
//! run's); a browser test renders it in headless Chromium and looks at the screenshot for the lanes, the status bands
//! and the violation. Where no Chromium is installed (`.ci/run` installs Debian's), the browser test says so and
//! skips.

use crate::support::shipped_named;
use sluice_engine::Canary;
use sluice_sim::{run_as_is, RunReport};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A failing run with a fault interval, a failover and a violation: `redeploy-without-fencing` after a worker crash.
fn failing_run() -> RunReport {
    let report = run_as_is(&shipped_named("batch-worker-crash"), 1, &[Canary::RedeployWithoutFencing]);
    assert!(!report.violations.is_empty(), "the canary fails this seed");
    report
}

/// The JSON the page carries.
fn page_data(html: &str) -> serde_json::Value {
    let open = r#"<script id="sluice-data" type="application/json">"#;
    let start = html.find(open).expect("the data script") + open.len();
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end]).expect("the data is JSON")
}

#[test]
fn the_page_is_whole_self_contained_and_shows_the_runs_own_data() {
    let report = failing_run();
    let html = sluice_sim::timeline::render_html(&report);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for outside in ["src=", "href=", "@import", "url(", "https://"] {
        assert!(!html.contains(outside), "the page reaches outside itself ({outside})");
    }
    assert_eq!(
        html.matches("http://").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "only the SVG namespace"
    );
    let data = page_data(&html);
    let lanes: Vec<&str> = data["lanes"].as_array().expect("lanes").iter().filter_map(|l| l.as_str()).collect();
    assert_eq!(lanes, ["coordinator", "store", "worker-1", "worker-2", "client"], "a lane per node, in order");
    let statuses: Vec<&str> =
        data["status_bands"].as_array().expect("bands").iter().filter_map(|b| b["status"].as_str()).collect();
    assert_eq!(statuses.first(), Some(&"CREATED"));
    assert!(statuses.contains(&"RUNNING") && statuses.contains(&"RESTARTING"), "{statuses:?}");
    assert_eq!(statuses.last().copied(), report.status.map(|s| s.to_string()).as_deref(), "ends with the last status");
    let bands = data["status_bands"].as_array().expect("bands");
    for pair in bands.windows(2) {
        assert_eq!(pair[0]["to_ms"], pair[1]["from_ms"], "bands tile the run");
    }
    let crash =
        data["faults"].as_array().expect("faults").iter().find(|f| f["label"] == "crash worker-1 … restart worker-1");
    let crash = crash.unwrap_or_else(|| panic!("the crash and its restart as one interval: {}", data["faults"]));
    assert!(crash["to_ms"].as_f64() > crash["from_ms"].as_f64() && crash["nodes"][0] == "worker-1");
    let executions = data["executions"].as_array().expect("executions");
    let lost = executions.iter().find(|e| e["node"] == "worker-1" && e["outcome"] == "lost").expect("a lost execution");
    assert_eq!(lost["to_ms"], crash["from_ms"], "the crash ends the executions of its node");
    assert!(executions.iter().any(|e| e["attempt"] == 2 || e["attempt"] == 1 && e["node"] == "worker-2"));
    let first = &report.violations[0];
    assert_eq!(data["violations"][0]["invariant"], first.invariant.as_str());
    assert_eq!(data["violations"][0]["at_ms"].as_f64(), Some(first.at_ms as f64));
    let committed: u64 = data["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["committed"].as_array().and_then(|c| c.last()).map_or(0, |last| last[1].as_u64().unwrap_or(0)))
        .sum();
    assert_eq!(committed, report.delivered, "committed steps end at the ledger's distinct records");
    assert_eq!(data["verdict"], "FAIL");
}

/// Debian's Chromium, or the one `SLUICE_CHROMIUM` names.
fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("SLUICE_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(PathBuf::from))
        .collect();
    candidates.into_iter().find(|c| {
        Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// Runs headless Chromium on `page` with `args`, killed after a minute (a hung browser fails the test, it does not
/// hang it); returns its stdout.
fn headless(browser: &Path, page: &Path, args: &[&str]) -> String {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,820"])
        .args(args)
        .arg(page)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let started = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("headless Chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("its output");
    assert!(out.status.success(), "headless Chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pixels of the screenshot within 8 of `rgb` on every channel.
fn pixels_like(image: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    image.chunks(channels).filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 8)).count()
}

#[test]
fn headless_chromium_renders_lanes_bands_and_the_violation() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no Chromium found (apt-get install chromium, or set SLUICE_CHROMIUM); .ci/run installs it");
        return;
    };
    let dir = std::env::temp_dir().join(format!("sluice-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let page = dir.join("timeline.html");
    std::fs::write(&page, sluice_sim::timeline::render_html(&failing_run())).expect("the page is written");

    // The script ran and drew: the DOM after load has the marks.
    let dom = headless(&browser, &page, &["--dump-dom"]);
    assert!(dom.contains(r#"data-rendered="yes""#), "the script ran to its end");
    assert!(dom.matches(r#"class="status-band""#).count() >= 4, "status bands are drawn");
    assert!(dom.contains(r#"class="violation first""#) && dom.contains(r#"class="violation-flag""#));
    assert!(dom.matches(r#"class="execution""#).count() >= 3 && dom.contains(r#"class="fault""#));
    for lane in ["job status", "faults", "worker-1", "worker-2", "partition 2"] {
        assert!(dom.contains(&format!(">{lane}</text>")), "lane {lane:?} is labelled");
    }

    // The screenshot shows them: colours of the bands, the executions and the violation, in quantity.
    let shot = dir.join("timeline.png");
    headless(&browser, &page, &[&format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("the screenshot exists"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("its pixels");
    let channels = info.color_type.samples();
    let image = &buf[..info.buffer_size()];
    for (what, rgb, at_least) in [
        ("the RUNNING band", [0x2c, 0xa2, 0x5f], 2_000),
        ("the RESTARTING band", [0xfd, 0xae, 0x6b], 2_000),
        ("the FAILED band", [0x7f, 0x00, 0x00], 2_000),
        ("attempt 1's executions", [0x4e, 0x79, 0xa7], 2_000),
        ("the violation's line and flag", [0xe6, 0x00, 0x7e], 1_000),
    ] {
        let seen = pixels_like(image, channels, rgb);
        assert!(seen >= at_least, "{what}: {seen} pixels of #{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
