//! Rendering results for people (aligned tables) and for scripts (`-o json`).
//!
//! A command builds its rows once, as JSON objects with lower_snake_case keys; the table view shows the
//! same fields under upper-case headers, so the two formats can never disagree.

use std::io::{self, Write};

use clap::ValueEnum;
use serde_json::{Map, Value};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header line.
    Table,
    /// JSON on one line per document.
    Json,
}

/// Prints `rows` in `format`: as a table with `columns` (keys of each row) or as a JSON list.
pub fn print_rows(format: Format, columns: &[&str], rows: &[Map<String, Value>]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, rows)?;
            writeln!(out)
        }
        Format::Table => out.write_all(render_table(columns, rows).as_bytes()),
    }
}

/// Renders a table: upper-case headers, columns padded to their widest cell, two spaces between.
pub fn render_table(columns: &[&str], rows: &[Map<String, Value>]) -> String {
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row.get(*c))).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(header[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in std::iter::once(&header).chain(cells.iter()) {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// One value as a table cell: strings bare, lists comma-joined, absent or null as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_string(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn table_aligns_and_renders_every_kind_of_cell() {
        let rows = [
            row(json!({"name": "web", "ips": ["10.65.0.2", "fd00:65::2"], "asn": 64511})),
            row(json!({"name": "database", "ips": [], "asn": null})),
        ];
        let text = render_table(&["name", "ips", "asn"], &rows);
        assert_eq!(
            text,
            "NAME      IPS                   ASN\n\
             web       10.65.0.2,fd00:65::2  64511\n\
             database  -                     -\n"
        );
    }

    #[test]
    fn missing_columns_show_a_dash() {
        let text = render_table(&["a", "b"], &[row(json!({"a": "x"}))]);
        assert_eq!(text, "A  B\nx  -\n");
    }
}
