//! The fleet's nodes as `status` shows them (after the jobs, or alone with `--nodes`):
//! each with its process, its last heartbeat by the database clock and its state.

use super::list::render_table;
use super::{CmdResult, Failure, exit, print};
use crate::coord::NodeInfo;

const HEADER: [&str; 5] = ["NODE", "PROCESS", "PID", "HEARTBEAT", "STATE"];

/// "0.4s ago", "2m 5s ago".
fn age(n: &NodeInfo) -> String {
    let d = n.silent;
    if d.as_secs() < 60 {
        format!("{:.1}s ago", d.as_secs_f64())
    } else {
        let d = std::time::Duration::from_secs(d.as_secs());
        format!("{} ago", crate::units::format_duration(d))
    }
}

/// The nodes table.
pub(super) fn table_text(nodes: &[NodeInfo]) -> String {
    let rows: Vec<[String; 5]> = nodes
        .iter()
        .map(|n| {
            [
                n.node.clone(),
                if n.daemon { "daemon" } else { "run" }.to_string(),
                n.pid.to_string(),
                age(n),
                n.state.as_str().to_string(),
            ]
        })
        .collect();
    render_table(&HEADER, &rows)
}

/// One object per node process: `node`, `incarnation` (the process's own id), `pid`,
/// `daemon`, `started`, `heartbeat` (RFC 3339, by the database clock),
/// `heartbeat_age_seconds` and `state`.
pub(super) fn json_value(nodes: &[NodeInfo]) -> serde_json::Value {
    nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "node": n.node,
                "incarnation": n.incarnation,
                "pid": n.pid,
                "daemon": n.daemon,
                "started": n.started,
                "heartbeat": n.heartbeat,
                "heartbeat_age_seconds": n.silent.as_secs_f64(),
                "state": n.state.as_str(),
            })
        })
        .collect()
}

/// `status --nodes [--json]`.
pub(super) fn print(nodes: &[NodeInfo], json: bool, fleet: bool) -> CmdResult {
    let text = if json {
        serde_json::to_string_pretty(&json_value(nodes))
            .map_err(|e| Failure::usage(e.to_string()))?
            + "\n"
    } else if !fleet {
        "no fleet nodes: this table has no [cluster]\n".to_string()
    } else if nodes.is_empty() {
        "no node has joined the fleet yet\n".to_string()
    } else {
        table_text(nodes)
    };
    print::out(text)?;
    Ok(exit::OK)
}
