//! The data plane moves records in buffers and returns credits in bulk (README, "How it works": a `Data` frame holds
//! up to a quarter of the stream window, and a consumer returns credits once it owes a quarter of the window). Run
//! as one message per record, it would still deliver everything: only the message count shows it, and that count is
//! deterministic, so these are bounds on it, not on time.

use sluice_sim::run;

/// A batch job of one partition: 5,000 records from an unpaced source (which fills its buffers), through a map if
/// asked, into a sink writing batches of 100. Every run must deliver them all in fewer than `per_record` messages per
/// record.
fn check_messages_per_record(with_map: bool, per_record: f64) {
    let records = 5_000u64;
    let map = if with_map { "[[job.vertices]]\nname = \"double\"\nkind = \"map\"\n" } else { "" };
    let text = format!(
        r#"# Goal: records move in buffers and credits return in bulk.  Method: batch, one unpaced partition.
name = "bulk"
duration_ms = 20_000
[job]
mode = "batch"
partitions = 1
delivery = "at-least-once"
[[job.vertices]]
name = "in"
kind = "source"
records = {records}
rate_per_sec = 0
{map}[[job.vertices]]
name = "out"
kind = "sink"
batch_size = 100
[cluster]
workers = 2
[expect]
status = "FINISHED"
"#
    );
    let s = crate::support::parse(&text, "bulk");
    let bound = (per_record * records as f64) as u64;
    for seed in 0..3 {
        let r = run(&s, seed, &[]);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(r.delivered, records, "seed {seed}: every record delivered");
        assert!(r.messages < bound, "seed {seed}: {} messages for {records} records, bound {bound}", r.messages);
    }
}

/// Per record, the class C store protocol costs two messages (the write and its answer). The data frames, the
/// credits, the batch EOTs and the control traffic must take less than half a message more: records sent one per
/// frame take one message each.
#[test]
fn a_source_sends_its_records_in_buffers() {
    check_messages_per_record(false, 2.5);
}

/// With a map between them, two hops of frames and credits: together with the batch EOTs and the control traffic,
/// less than one message per record beyond the store's two. A map returns a credit for each record it finishes, so
/// credits sent as they are owed would take one message per record on the first hop alone.
#[test]
fn a_map_returns_its_credits_in_bulk() {
    check_messages_per_record(true, 3.0);
}
