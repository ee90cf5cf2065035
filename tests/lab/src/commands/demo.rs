//! `ferrolb-lab demo`, the default: the example Services, the table, node
//! death and restore, a graceful stop, each failover timed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::table::print_table;
use super::{example_services, report_dead, start, wait_records, Setup, EXAMPLE_PORT};
use crate::failover::{self, Fault};
use crate::stats::ms;
use crate::{l2status, objects};

/// The demo fails over this example Service on its port.
const FAILOVER_SERVICE: &str = "web-dualstack";

/// Runs the demo (needs at least 2 nodes).
pub async fn demo(setup: &Setup) -> anyhow::Result<()> {
    if setup.nodes < 2 {
        bail!("the demo fails over, so it needs at least 2 nodes");
    }
    let mut c = start(setup, true).await?;
    let t = Instant::now();
    println!("applying the example Services:");
    example_services(&c).await?;
    println!(
        "every IP assigned, announced and answering after {} ms",
        t.elapsed().as_millis()
    );
    let records = wait_records(&c).await?;
    println!(
        "every ServiceL2Status record written {} ms later (the owner holds a Service 5 s first)",
        records.as_millis()
    );
    println!();
    print_table(&c).await?;
    println!();
    report_dead(&mut c)?;

    let ips = objects::ingress_ips(&c.service(FAILOVER_SERVICE).await?);
    let v4 = *ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .context("web-dualstack has no IPv4 address")?;
    let limit = Duration::from_secs(10);
    let d = l2status::record_delay(
        &mut c,
        FAILOVER_SERVICE,
        v4,
        EXAMPLE_PORT,
        Fault::NodeDeath,
        limit,
    )
    .await?;
    let f = &d.failover;
    println!(
        "node death: {} cut off and its speaker killed; {} answers {v4} after {:.0} ms ({} requests); \
         its ServiceL2Status names {} {:.0} ms later",
        f.from,
        f.to,
        ms(f.gap),
        f.probes,
        f.to,
        ms(d.after_answer)
    );
    let f = f.clone();
    print_table(&c).await?;
    println!();
    print!("restoring {}... ", f.from);
    c.restore_node(&f.from)?;
    let owner = failover::settle(&c, v4, EXAMPLE_PORT).await?;
    println!("ok, {owner} answers");
    report_dead(&mut c)?;

    let g = failover::measure(&mut c, v4, EXAMPLE_PORT, Fault::GracefulStop, limit).await?;
    println!(
        "graceful stop: {}'s speaker got SIGTERM; {} answers {v4} after {:.0} ms ({} requests)",
        g.from,
        g.to,
        ms(g.gap),
        g.probes
    );
    print!("tearing down... ");
    drop(c);
    println!("ok");
    Ok(())
}
