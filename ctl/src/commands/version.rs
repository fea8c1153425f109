//! `calicoctl version`: the versions of calicoctl and the components built into it.

use clap::Args;
use serde_json::{json, Map, Value};

use crate::cli::GlobalOpts;
use crate::output::print_rows;

#[derive(Debug, Args)]
pub struct VersionArgs {}

pub fn run(global: &GlobalOpts, _args: &VersionArgs) -> anyhow::Result<()> {
    print_rows(global.output, &["component", "version"], &rows())?;
    Ok(())
}

fn rows() -> Vec<Map<String, Value>> {
    let version = env!("CARGO_PKG_VERSION");
    ["calicoctl"]
        .iter()
        .map(|component| {
            let row = json!({ "component": component, "version": version });
            row.as_object().cloned().unwrap_or_default()
        })
        .collect()
}
