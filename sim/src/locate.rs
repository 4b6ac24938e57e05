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
    }
}
