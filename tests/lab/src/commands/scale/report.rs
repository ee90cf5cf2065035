//! The pure parts of `scale`: which Services are advertised, assignment
//! rates, the controller's logged timings, and the report as a text table.

use std::time::Duration;

use serde_json::Value;

use super::super::usage::{processes_table, show};

/// Whether Service `k` of `n` comes from the advertised pool: `m` of the
/// `n` are, spread evenly over the creation order.
pub(super) fn advertised(k: usize, n: usize, m: usize) -> bool {
    n > 0 && k < n && (k * m) / n != ((k + 1) * m) / n
}

/// Services given an IP per second: the mean from the first create (t = 0)
/// to the last assignment, and the busiest one-second bucket.
pub(super) fn assignment_rates(at: &[Duration]) -> (f64, usize) {
    let Some(last) = at.iter().max() else {
        return (0.0, 0);
    };
    let mean = at.len() as f64 / last.as_secs_f64().max(1e-3);
    let mut buckets = vec![0usize; last.as_secs() as usize + 1];
    for t in at {
        buckets[t.as_secs() as usize] += 1;
    }
    (mean, buckets.into_iter().max().unwrap_or(0))
}

/// `after_ms` of the last log line with `message` (the controller's
/// structured fields in text format: `... caches synced after_ms=176
/// services=10000`).
pub(super) fn logged_after_ms(log: &str, message: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(message))?;
    let value = line.split("after_ms=").nth(1)?;
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The report as text: one section per measurement.
pub(super) fn render(r: &Value) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let s = &r["setup"];
    line(format!(
        "\n{} nodes, {} IPv6 Services ({} advertised, the rest from a pool no L2Advertisement selects), {} creates in flight",
        show(&s["nodes"]),
        show(&s["services"]),
        show(&s["advertised"]),
        show(&s["in_flight"])
    ));
    let b = &r["burst"];
    line("\nburst".into());
    for (label, key) in [
        (
            "create calls (Service + its EndpointSlice each)",
            "create_calls_ms",
        ),
        (
            "first create -> last Service has its IP",
            "create_to_last_assigned_ms",
        ),
        (
            "first create -> every advertised IP announced",
            "create_to_all_announced_ms",
        ),
    ] {
        line(format!("  {label:<52} {:>10} ms", show(&b[key])));
    }
    line(format!(
        "  {:<52} {:>10} /s (peak second {})",
        "Services assigned (status writes), mean",
        show(&b["assigned_per_s"]),
        show(&b["assigned_peak_second"])
    ));
    line(format!(
        "  {:<52} {:>10} s",
        "CPU of the lab process (API test server + this client)",
        show(&b["lab_cpu_s"])
    ));
    line(format!(
        "\nprocesses after sync and {} s idle (burst CPU: first create until idle)",
        show(&r["idle_window_s"])
    ));
    out_processes(&mut line, &r["processes"]);
    let a = &r["api_server"];
    line("\nAPI test server (in the lab process)".into());
    line(format!(
        "  list every Service: {} ms ({} bytes); get: p50 {} ms; merge patch: p50 {} ms, p99 {} ms",
        show(&a["list_services_ms"]),
        show(&a["list_bytes"]),
        show(&a["get_p50_ms"]),
        show(&a["merge_patch_p50_ms"]),
        show(&a["merge_patch_p99_ms"])
    ));
    line("\nEvents created during the burst".into());
    out_events(&mut line, &r["events_burst"]);
    line("\nrestarts, one at a time, nothing changed in the cluster".into());
    for x in r["restarts"].as_array().into_iter().flatten() {
        line(format!(
            "  {}: ready after {} ms (caches synced after {} ms, seeded after {} ms, as logged); {} log lines in its first 25 s",
            show(&x["component"]),
            show(&x["ready_ms"]),
            show(&x["caches_synced_after_ms"]),
            show(&x["seeded_after_ms"]),
            show(&x["log_lines_25s"])
        ));
        out_events(&mut line, &x["events"]);
    }
    line("\nchurn: CPU % of one core while it runs".into());
    for x in r["churn"].as_array().into_iter().flatten() {
        line(format!(
            "  {} ({} s, {}/s asked, {}/s done, {} errors): {}",
            show(&x["kind"]),
            show(&x["secs"]),
            show(&x["target_per_s"]),
            show(&x["achieved_per_s"]),
            show(&x["errors"]),
            per_process(&x["cpu_percent"])
        ));
    }
    line("\nbad input, one of each".into());
    for x in r["bad_input"].as_array().into_iter().flatten() {
        line(format!(
            "  {}: IP after {} ms, announced after {} ms; CPU s until then + 2 s: {}",
            show(&x["case"]),
            show(&x["assigned_ms"]),
            show(&x["announced_ms"]),
            per_process(&x["cpu_s"])
        ));
    }
    out
}

fn out_processes(line: &mut impl FnMut(String), procs: &Value) {
    let rows = procs.as_array().map(Vec::as_slice).unwrap_or_default();
    for l in processes_table(rows).lines() {
        line(format!("  {l}"));
    }
}

fn out_events(line: &mut impl FnMut(String), events: &Value) {
    let rows = events.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        line("    (no new Events, no series increments)".into());
    }
    for e in rows {
        line(format!(
            "    {:<20} {:<24} {:>6} new {:>6} series increments",
            show(&e["component"]),
            show(&e["reason"]),
            show(&e["new"]),
            show(&e["series_increments"])
        ));
    }
}

/// `{"controller": 1.2, "node-1": 3.4}` as `controller 1.20, node-1 3.40`.
fn per_process(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exactly_m_of_n_services_are_advertised_spread_over_the_order() {
        let picked: Vec<usize> = (0..10).filter(|&k| advertised(k, 10, 3)).collect();
        assert_eq!(picked.len(), 3);
        assert!(picked.windows(2).all(|w| w[1] - w[0] >= 3));
        assert_eq!(
            (0..10_000)
                .filter(|&k| advertised(k, 10_000, 1_000))
                .count(),
            1_000
        );
        assert_eq!((0..5).filter(|&k| advertised(k, 5, 5)).count(), 5);
        assert_eq!((0..5).filter(|&k| advertised(k, 5, 0)).count(), 0);
    }

    #[test]
    fn rates_are_the_mean_to_the_last_assignment_and_the_busiest_second() {
        let at: Vec<Duration> = [100, 200, 300, 1_500, 2_000]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        let (mean, peak) = assignment_rates(&at);
        assert!((mean - 2.5).abs() < 1e-9);
        assert_eq!(peak, 3);
        assert_eq!(assignment_rates(&[]), (0.0, 0));
    }

    #[test]
    fn the_last_logged_timing_of_a_message_is_read() {
        let log = "2026-12-02T10:00:00Z  INFO ferrolb_controller::run: caches synced after_ms=170 services=3\n\
                   2026-12-02T10:01:00Z  INFO ferrolb_controller::run: caches synced after_ms=176 services=10000\n\
                   2026-12-02T10:01:01Z  INFO ferrolb_controller::run: leading: seeded after_ms=1500 services=10000\n";
        assert_eq!(logged_after_ms(log, "caches synced"), Some(176));
        assert_eq!(logged_after_ms(log, "leading: seeded"), Some(1500));
        assert_eq!(logged_after_ms(log, "stopped"), None);
    }

    #[test]
    fn the_table_has_every_section_and_its_numbers() {
        let r = json!({
            "setup": {"nodes": 3, "services": 10, "advertised": 2, "in_flight": 16},
            "burst": {"create_calls_ms": 12.5, "create_to_last_assigned_ms": 40.0,
                      "create_to_all_announced_ms": 45.0, "assigned_per_s": 250.0,
                      "assigned_peak_second": 10},
            "idle_window_s": 10,
            "processes": [{"name": "controller", "rss_kib": 1000}],
            "api_server": {"list_services_ms": 3.0, "list_bytes": 100},
            "events_burst": [{"component": "ferrolb-controller", "reason": "IPAllocated", "new": 10, "series_increments": 0}],
            "restarts": [{"component": "node-1", "ready_ms": 900, "log_lines_25s": 12, "events": []}],
            "churn": [{"kind": "EndpointSlice ready flips", "secs": 10, "target_per_s": 200,
                       "achieved_per_s": 199.5, "errors": 0, "cpu_percent": {"controller": 1.5}}],
            "bad_input": [{"case": "2,000 ports", "assigned_ms": 10.0, "announced_ms": 30.0, "cpu_s": {"node-1": 0.25}}],
        });
        let text = render(&r);
        for want in [
            "10 IPv6 Services (2 advertised",
            "12.50 ms",
            "250.00 /s (peak second 10)",
            "controller",
            "IPAllocated",
            "node-1: ready after 900 ms",
            "(no new Events, no series increments)",
            "200/s asked, 199.50/s done",
            "controller 1.50",
            "2,000 ports: IP after 10.00 ms, announced after 30.00 ms",
            "node-1 0.25",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }
}
