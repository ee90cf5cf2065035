//! CPU and memory of the lab's components, read from `/proc`: what the
//! bench's idle part and `scale` report.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::Cluster;

/// Each process's CPU time (clock ticks) at one moment, in the order of
/// the `(name, pid)` list it was taken from.
pub(super) struct CpuMark(Vec<Option<u64>>);

impl CpuMark {
    /// The CPU time of every pid now.
    pub(super) fn now(pids: &[(String, u32)]) -> Self {
        Self(pids.iter().map(|(_, p)| Cluster::cpu_ticks(*p)).collect())
    }

    /// CPU seconds each process spent since this mark (`None` for a
    /// process that is gone or was not there at the mark).
    pub(super) fn seconds_since(&self, pids: &[(String, u32)]) -> Vec<Option<f64>> {
        Self::now(pids).seconds_after(self)
    }

    /// CPU seconds from `earlier` to this mark, per process.
    pub(super) fn seconds_after(&self, earlier: &CpuMark) -> Vec<Option<f64>> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|(now, then)| ticks_to_seconds(*then, *now))
            .collect()
    }
}

/// CPU seconds between two tick counts (100 ticks a second); `None` when
/// either is missing or the counter went backwards (another process).
fn ticks_to_seconds(then: Option<u64>, now: Option<u64>) -> Option<f64> {
    Some(now?.checked_sub(then?)? as f64 / 100.0)
}

/// CPU seconds spent over `window` as a percentage of one core.
pub(super) fn percent(seconds: Option<f64>, window: Duration) -> Option<f64> {
    let secs = window.as_secs_f64();
    (secs > 0.0).then_some(seconds? / secs * 100.0)
}

/// One process's row: memory now and at its peak, the CPU figures given,
/// and for a speaker the IPs it announces and its multicast join errors.
pub(super) fn process_json(
    c: &Cluster,
    name: &str,
    pid: u32,
    idle_cpu_percent: Option<f64>,
    burst_cpu_s: Option<f64>,
) -> Value {
    let speaker = name != "controller";
    let metric = |m: &str, label: Option<&str>| {
        if !speaker {
            return None;
        }
        match label {
            None => c.speaker_metric(name, m),
            Some(l) => c.speaker_metric_with(name, m, l),
        }
    };
    json!({
        "name": name,
        "rss_kib": Cluster::rss_kib(pid),
        "peak_rss_kib": Cluster::peak_rss_kib(pid),
        "idle_cpu_percent": idle_cpu_percent,
        "burst_cpu_s": burst_cpu_s,
        "announced_ips": metric("ferrolb_speaker_announced_ips", None),
        "multicast_errors": metric("ferrolb_speaker_transport_errors_total", Some("op=\"multicast\"")),
    })
}

/// [`process_json`] rows as a text table, one line per process.
pub(super) fn processes_table(procs: &[Value]) -> String {
    let mut out = format!(
        "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}\n",
        "process",
        "RSS KiB",
        "peak RSS KiB",
        "idle CPU %",
        "burst CPU s",
        "announced",
        "multicast errs"
    );
    for p in procs {
        out.push_str(&format!(
            "{:<12} {:>10} {:>14} {:>12} {:>14} {:>10} {:>16}\n",
            show(&p["name"]),
            show(&p["rss_kib"]),
            show(&p["peak_rss_kib"]),
            show(&p["idle_cpu_percent"]),
            show(&p["burst_cpu_s"]),
            show(&p["announced_ips"]),
            show(&p["multicast_errors"]),
        ));
    }
    out
}

/// A measured value as a table cell: `-` when missing, floats to two
/// decimals.
pub(super) fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_need_both_marks_and_a_counter_that_grew() {
        assert_eq!(ticks_to_seconds(Some(100), Some(350)), Some(2.5));
        assert_eq!(ticks_to_seconds(None, Some(350)), None);
        assert_eq!(ticks_to_seconds(Some(400), Some(350)), None);
        let then = CpuMark(vec![Some(1), None]);
        let now = CpuMark(vec![Some(201), Some(5)]);
        assert_eq!(now.seconds_after(&then), vec![Some(2.0), None]);
    }

    #[test]
    fn percent_is_of_one_core_over_the_window() {
        assert_eq!(percent(Some(0.5), Duration::from_secs(10)), Some(5.0));
        assert_eq!(percent(None, Duration::from_secs(10)), None);
        assert_eq!(percent(Some(1.0), Duration::ZERO), None);
    }

    #[test]
    fn cells_show_missing_values_as_a_dash_and_floats_rounded() {
        assert_eq!(show(&Value::Null), "-");
        assert_eq!(show(&json!(1.23456)), "1.23");
        assert_eq!(show(&json!(17)), "17");
        assert_eq!(show(&json!("node-1")), "node-1");
    }

    #[test]
    fn the_process_table_has_a_header_and_a_row_per_process() {
        let rows = [json!({"name": "controller", "rss_kib": 2048, "idle_cpu_percent": 0.25})];
        let table = processes_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("process"));
        assert!(lines[1].starts_with("controller"));
        assert!(lines[1].contains("2048") && lines[1].contains("0.25"));
    }
}
