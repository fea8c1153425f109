//! `calicoctl status [--node NAME]`: what the nodes last reported: state, Felix's endpoint counts, and
//! their BGP sessions in the shape of BIRD's `show protocols`.
//!
//! Inputs: the arguments and the master's `/v1/nodes` and `/v1/nodes/<name>/status` routes. Outputs:
//! per node a summary line and a table (NAME, PROTO, STATE, SINCE, INFO, PEER, ASN, TYPE, RECEIVED,
//! ACCEPTED, ADVERTISED; NAME is BIRD's protocol name, `Mesh_172_17_8_102`, `Global_…`, `Node_…`).
//! With `-o json`: with `--node`, the node's report `{"node", "state", "reported_at", "felix", "bgp"}`;
//! without, a list of them (a node that never reported has `"state": "unknown"`).

use std::time::{SystemTime, UNIX_EPOCH};

use calico_master::client::ClientError;
use clap::Args;
use serde_json::{json, Value};

use super::{client, items, object};
use crate::cli::GlobalOpts;
use crate::output::{render_table, Format};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this node (default: every node).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}

/// The columns of the session table.
pub const COLUMNS: &[&str] = &[
    "name",
    "proto",
    "state",
    "since",
    "info",
    "peer",
    "asn",
    "type",
    "received",
    "accepted",
    "advertised",
];

/// BIRD's protocol name for a session: `Mesh_10_0_0_2`.
fn protocol_name(kind: &str, peer: &str) -> String {
    let prefix = match kind {
        "mesh" => "Mesh",
        "global" => "Global",
        _ => "Node",
    };
    format!("{prefix}_{}", peer.replace(['.', ':'], "_"))
}

/// The human view of one report.
pub fn render(report: &Value, now: u64) -> String {
    let node = report["node"].as_str().unwrap_or("?");
    let state = report["state"].as_str().unwrap_or("unknown");
    let mut text = match report["reported_at"].as_u64() {
        Some(t) => format!(
            "Node {node}: {state}, reported {} s ago; Felix: {} endpoint(s) programmed, {} failed\n",
            now.saturating_sub(t),
            report["felix"]["programmed"],
            report["felix"]["failed"]
        ),
        None => format!("Node {node}: {state} (no status reported yet)\n"),
    };
    for e in items(&report["felix"]["errors"]) {
        text.push_str(&format!("Felix refused: {}\n", e.as_str().unwrap_or("?")));
    }
    let rows: Vec<_> = items(&report["bgp"])
        .iter()
        .map(|s| {
            let st = s["state"].as_str().unwrap_or("");
            let kind = s["type"].as_str().unwrap_or("");
            object(json!({
                "name": protocol_name(kind, s["peer"].as_str().unwrap_or("")),
                "proto": "BGP",
                "state": if st.eq_ignore_ascii_case("established") { "up" } else { "start" },
                "since": s["since"], "info": st, "peer": s["peer"], "asn": s["asn"], "type": kind,
                "received": s["routes_received"], "accepted": s["routes_accepted"],
                "advertised": s["routes_advertised"],
            }))
        })
        .collect();
    if rows.is_empty() {
        text.push_str("No BGP sessions.\n");
    } else {
        text.push_str(&render_table(COLUMNS, &rows));
    }
    text
}

fn report(c: &calico_master::client::BlockingClient, node: &str) -> anyhow::Result<Value> {
    match c.get(&format!("/v1/nodes/{node}/status")) {
        Ok(v) => Ok(v),
        // A registered node that never reported.
        Err(ClientError::Api {
            status: 404,
            ref error,
            ..
        }) if error.contains("not reported") => Ok(
            json!({"node": node, "state": "unknown", "reported_at": null, "felix": null, "bgp": []}),
        ),
        Err(e) => Err(e.into()),
    }
}

pub fn run(global: &GlobalOpts, args: &StatusArgs) -> anyhow::Result<()> {
    let c = client(global)?;
    let reports: Vec<Value> = match &args.node {
        Some(n) => {
            calico_master::model::validate_hostname("node", n)
                .map_err(|e| anyhow::anyhow!("invalid --node: {e}"))?;
            vec![report(&c, n)?]
        }
        None => {
            let nodes = c.get("/v1/nodes")?;
            items(&nodes)
                .iter()
                .filter_map(|n| n["name"].as_str())
                .map(|n| report(&c, n))
                .collect::<anyhow::Result<_>>()?
        }
    };
    match global.output {
        Format::Json => {
            let doc = match (&args.node, reports.as_slice()) {
                (Some(_), [one]) => one.clone(),
                _ => Value::Array(reports),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Table => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if reports.is_empty() {
                println!("No nodes are registered.");
            }
            let texts: Vec<String> = reports.iter().map(|r| render(r, now)).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_bird() {
        let r = json!({"node": "h1", "state": "running", "reported_at": 100,
            "felix": {"programmed": 3, "failed": 1},
            "bgp": [{"peer": "10.0.0.2", "asn": 64511, "type": "mesh", "state": "Established", "since": "12:00:01",
                     "routes_received": 2, "routes_accepted": 2, "routes_advertised": 1}]});
        let text = render(&r, 105);
        assert!(
            text.starts_with(
                "Node h1: running, reported 5 s ago; Felix: 3 endpoint(s) programmed, 1 failed\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Mesh_10_0_0_2  BGP    up     12:00:01  Established  10.0.0.2  64511  mesh"
            ),
            "{text}"
        );
        assert_eq!(protocol_name("global", "fd00::1"), "Global_fd00__1");
        let r = json!({"node": "h1", "state": "running", "reported_at": 100,
            "felix": {"programmed": 0, "failed": 0, "errors": ["pool 10.65.0.0/16 asks for IPIP, but…"]},
            "bgp": []});
        assert!(
            render(&r, 105).contains("\nFelix refused: pool 10.65.0.0/16 asks for IPIP, but…\n"),
            "{}",
            render(&r, 105)
        );
    }
}
