//! Finds where a key stands in a TOML text, so every scenario error can name its file, line, column and key.
//!
//! The document is walked once into a flat list of `(path, key span, value span)`; paths look like
//! `job.vertices[1].records` or `faults[0].kind`.

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// One key of the document.
#[derive(Clone, Debug)]
struct Entry {
    path: String,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// Every key of a TOML text with its place.
#[derive(Clone, Debug, Default)]
pub struct KeyMap {
    entries: Vec<Entry>,
    line_starts: Vec<usize>,
}

impl KeyMap {
    /// Indexes `text`; a text that does not parse gives an empty index (its syntax error carries its own place).
    pub fn new(text: &str) -> KeyMap {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut map = KeyMap { entries: Vec::new(), line_starts };
        if let Ok(doc) = ImDocument::parse(text.to_string()) {
            map.walk_table("", doc.as_table());
        }
        map
    }

    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    fn walk_table(&mut self, prefix: &str, table: &Table) {
        for (key, item) in table.iter() {
            let path = Self::join(prefix, key);
            let key_span = table.key(key).and_then(|k| k.span());
            self.entries.push(Entry { path: path.clone(), key: key_span, value: item.span() });
            self.walk_item(&path, item);
        }
    }

    fn walk_item(&mut self, path: &str, item: &Item) {
        match item {
            Item::Table(t) => self.walk_table(path, t),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.entries.push(Entry { path: p.clone(), key: t.span(), value: t.span() });
                    self.walk_table(&p, t);
                }
            }
            Item::Value(v) => self.walk_value(path, v),
            Item::None => {}
        }
    }

    fn walk_value(&mut self, path: &str, value: &Value) {
        match value {
            Value::InlineTable(t) => {
                for (key, v) in t.iter() {
                    let p = Self::join(path, key);
                    let key_span = t.key(key).and_then(|k| k.span());
                    self.entries.push(Entry { path: p.clone(), key: key_span, value: v.span() });
                    self.walk_value(&p, v);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.entries.push(Entry { path: p.clone(), key: v.span(), value: v.span() });
                    self.walk_value(&p, v);
                }
            }
            _ => {}
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|s| *s <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        (line.max(1), offset - start + 1)
    }

    /// Where `path` stands (its key, else its value); the closest existing parent when it is missing.
    pub fn place_of(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path.to_string();
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                let span = e.key.clone().or_else(|| e.value.clone())?;
                return Some(self.line_col(span.start));
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }

    /// The keys written directly in the table at `path`, in document order (`faults[0]` gives `at_ms`, `kind`, ...).
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}.");
        let direct = |rest: &str| !rest.is_empty() && !rest.contains(['.', '[']);
        self.entries
            .iter()
            .filter_map(|e| e.path.strip_prefix(&prefix).filter(|rest| direct(rest)).map(str::to_string))
            .collect()
    }

    /// The deepest key whose value covers `span` (to name the key of a type error).
    pub fn path_at(&self, span: &Range<usize>) -> Option<String> {
        self.entries
            .iter()
            .filter(|e| {
                let covers =
                    |r: &Option<Range<usize>>| r.as_ref().is_some_and(|r| r.start <= span.start && span.end <= r.end);
                covers(&e.value) || covers(&e.key)
            })
            .max_by_key(|e| e.path.len())
            .map(|e| e.path.clone())
    }
}

/// The key at byte `offset` read from the lines alone, for a text that does not parse (a syntax error, a duplicate
/// key, a number too large): the last table header above it (`[job]`, `[[job.vertices]]` counted) and the key
/// assigned on its line. `None` when the offset stands before any key or header.
pub fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_no = text.as_bytes()[..offset].iter().filter(|b| **b == b'\n').count();
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut key = None;
    for (i, line) in text.lines().take(line_no + 1).enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.find("]]").map(|end| &l[..end])) {
            let name = name.trim().to_string();
            let count = match arrays.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => {
                    *c += 1;
                    *c
                }
                None => {
                    arrays.push((name.clone(), 0));
                    0
                }
            };
            table = format!("{name}[{count}]");
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.find(']').map(|end| &l[..end])) {
            table = name.trim().to_string();
        } else if i == line_no {
            key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string()).filter(|k| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            });
        }
    }
    match (table.is_empty(), key) {
        (true, key) => key,
        (false, Some(k)) => Some(format!("{table}.{k}")),
        (false, None) => Some(table),
    }
}

/// A TOML error's message made readable on one line; the empty message TOML gives for a missing value is replaced.
pub fn toml_message(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        "a value is missing here (is the file cut off?)".to_string()
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let text = "a = 1\n[job]\nmode = \"batch\"\n[[job.vertices]]\nname = \"in\"\nscale = { min = 1 }\n";
        let m = KeyMap::new(text);
        assert_eq!(m.place_of("a"), Some((1, 1)));
        assert_eq!(m.place_of("job.mode"), Some((3, 1)));
        assert_eq!(m.place_of("job.vertices[0].name"), Some((5, 1)));
        assert_eq!(m.place_of("job.vertices[0].scale.min"), Some((6, 11)));
        assert_eq!(m.place_of("job.vertices[0].missing"), m.place_of("job.vertices[0]"));
        let at = text.find("\"batch\"").unwrap();
        assert_eq!(m.path_at(&(at..at + 7)).as_deref(), Some("job.mode"));
        assert_eq!(m.children("job.vertices[0]"), vec!["name", "scale"]);
        assert_eq!(m.children("job"), vec!["mode", "vertices"]);
        assert!(m.children("job.mode").is_empty());
    }

    #[test]
    fn names_the_key_of_a_text_that_does_not_parse() {
        let text = "name = \"x\"\n[job]\nmode = \"batch\"\n[[job.vertices]]\nname = \"a\"\n[[job.vertices]]\nrecords = 1e99x\n";
        assert!(KeyMap::new(text).entries.is_empty(), "the text does not parse");
        let at = text.find("1e99x").unwrap();
        assert_eq!(key_on_line(text, at).as_deref(), Some("job.vertices[1].records"));
        assert_eq!(key_on_line(text, 0).as_deref(), Some("name"));
        assert_eq!(key_on_line("[job]\ndelivery =", 16).as_deref(), Some("job.delivery"));
        assert_eq!(key_on_line("[job\n", 2).as_deref(), None, "a broken header names no key");
        assert_eq!(key_on_line("", 0), None);
    }

    #[test]
    fn toml_messages_are_one_line_and_never_empty() {
        assert_eq!(toml_message("invalid table header\nexpected `.`, `]`"), "invalid table header; expected `.`, `]`");
        assert_eq!(toml_message(""), "a value is missing here (is the file cut off?)");
    }
}
