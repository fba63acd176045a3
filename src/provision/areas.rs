//! Every area's planner, in order, gathered into one [`Plan`].

use super::{InitSystem, Plan, Reader};
use super::{firewall, hosts, kdump, lvm, multipath, network, services, writer_service};
use crate::config::Config;
use anyhow::Result;

/// The plan computed from what `r` reads.
pub fn plan_with(r: &Reader, config: &Config) -> Result<Plan> {
    let mut plan = Plan::default();
    let root = r.root;
    let init = InitSystem::detect_in(root);

    let configured = &config.disks.os_disk;
    let os_disk = multipath::OsDiskId::read(root.path(), configured).map_err(|e| {
        crate::error::bad_input(format!(
            "[disks] os-disk = \"{configured}\": {e}; {}",
            crate::host::diskref::os_disk_remedy(&e)
        ))
    })?;
    let cur = r.text(multipath::PATH)?;
    let new = multipath::plan(cur.as_deref(), &os_disk);
    plan.edit("multipath", multipath::PATH, cur.as_deref(), new, 0o600);

    let os = &config.disks.os_disk;
    let lvm_plan = |t: &str| lvm::plan(t, os);
    plan.edit_shipped(
        r,
        "lvm",
        lvm::PATH,
        0o644,
        lvm_plan,
        "lvm2 not installed, no LVM filter set",
    )?;
    let missing = "install kexec-tools for kdump";
    plan.edit_shipped(r, "kdump", kdump::CONF, 0o644, kdump::plan_conf, missing)?;
    let missing = "not grub legacy, add crashkernel=auto to the kernel command line by hand";
    plan.edit_shipped(r, "kdump", kdump::GRUB, 0o600, kdump::plan_grub, missing)?;
    network::plan(r, &config.network, &mut plan)?;
    let cur = r.text(hosts::PATH)?;
    let new = hosts::plan(cur.as_deref(), &config.appliance.hostname, &config.network);
    plan.edit("hosts", hosts::PATH, cur.as_deref(), new, 0o644);
    if let Some(note) = hosts::note(&config.network) {
        plan.notes.push(note);
    }
    firewall::plan(r, init, config, &mut plan)?;
    writer_service::plan(r, init, config, &mut plan)?;
    services::plan(r, init, &mut plan)?;
    Ok(plan)
}
