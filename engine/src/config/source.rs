//! Byte offsets → line numbers, and the error collector used while validating.

use std::fmt;
use std::ops::Range;

use super::error::{ConfigError, ConfigErrors};

/// Start offset of every line of a text, for byte offset → 1-based line lookups.
#[derive(Debug)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset` (offsets past the end give the last line).
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i.max(1),
        }
    }
}

/// A serde path as the config's errors name keys (`wan[1].weight`), without the fields a
/// span wrapper adds (`serde_spanned`'s private keys); empty for the document itself.
pub(crate) fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    use std::fmt::Write as _;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Collects errors while a config is validated.
#[derive(Debug)]
pub(crate) struct Report<'t> {
    text: &'t str,
    lines: LineIndex,
    errors: Vec<ConfigError>,
}

impl<'t> Report<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Report {
            text,
            lines: LineIndex::new(text),
            errors: Vec::new(),
        }
    }

    /// Records an error at the value spanning `span` (its first line counts).
    pub(crate) fn at(
        &mut self,
        span: &Range<usize>,
        path: impl fmt::Display,
        message: impl Into<String>,
    ) {
        let line = self.line(span);
        self.errors.push(ConfigError {
            line: Some(line),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records an error that belongs to no single line.
    pub(crate) fn global(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        self.errors.push(ConfigError {
            line: None,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records a TOML syntax or type error, with the line of its span and the key path it
    /// was found at (empty for a syntax error).
    pub(crate) fn toml_error(&mut self, e: &toml::de::Error, path: String) {
        let mut message = e.message().trim().replace('\n', "; ");
        // `[lan]` where `[[lan]]` was meant: the error sits on a single-bracket header line.
        let at_table_header = e.span().is_some_and(|span| {
            let start = self
                .text
                .get(..span.start)
                .map_or(0, |b| b.rfind('\n').map_or(0, |i| i + 1));
            let line = self
                .text
                .get(start..)
                .and_then(|l| l.lines().next())
                .unwrap_or("");
            let line = line.trim_start();
            line.starts_with('[') && !line.starts_with("[[")
        });
        if at_table_header && message.contains("expected a sequence") {
            message.push_str(" (a list of tables is written [[name]], not [name])");
        }
        self.errors.push(ConfigError {
            line: e.span().map(|s| self.lines.line(s.start)),
            path,
            message,
        });
    }

    /// The 1-based line where `span` starts.
    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        self.lines.line(span.start)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors::new(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines() {
        let idx = LineIndex::new("ab\ncd\n\nx");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(2), 1); // the '\n' itself
        assert_eq!(idx.line(3), 2);
        assert_eq!(idx.line(6), 3);
        assert_eq!(idx.line(7), 4);
        assert_eq!(idx.line(100), 4);
        assert_eq!(LineIndex::new("").line(0), 1);
    }
}
