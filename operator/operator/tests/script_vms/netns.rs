//! Network namespaces as the "VMs" of the script end-to-end test: each gets its own
//! address on a private bridge, so the real scripts call the operator with plain curl
//! and the operator sees the instance's own source address, exactly as in the VNet.
//!
//! Names carry this process's id and a counter (`vgr<pid>-<n>`, bridge `vgrb<pid>x<n>`,
//! host-side veths `vh<pid>_<n>`), so parallel runs and tests never collide, and a run
//! that was killed before its `Drop` ran is swept by the next one (its pid is gone).

use std::{
    net::Ipv4Addr,
    process::Command,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex,
    },
};

/// Names unique within this process.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// Choosing a free /16 and claiming it must not interleave between tests.
static CLAIM: Mutex<()> = Mutex::new(());

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Kill every process in namespace `ns` (SIGKILL: a VM being deleted gets no warning).
pub fn kill_all_in(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// Remove namespaces, bridges and veths left by runs whose process no longer exists.
fn sweep_stale() {
    let owner = |name: &str, prefix: &str| -> Option<u32> {
        name.strip_prefix(prefix)?.split(['-', '_', '@', 'x']).next()?.parse().ok()
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner(ns, "vgr").is_some_and(|pid| !pid_alive(pid)) {
                kill_all_in(ns);
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }
    if let Ok(links) = ip(&["-o", "link", "show"]) {
        for name in links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n)) {
            let stale = owner(name, "vgrb").or_else(|| owner(name, "vh")).is_some_and(|pid| !pid_alive(pid));
            if stale {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// A bridge in the host namespace with address `10.<block>.0.1/16`; VMs join it.
pub struct Bridge {
    name: String,
    pub block: u8,
    pub host_ip: Ipv4Addr,
}

impl Bridge {
    /// Needs CAP_NET_ADMIN (root). Picks a /16 in 10.200-250 that no interface here uses.
    pub fn create() -> Result<Self, String> {
        let _claim = CLAIM.lock().unwrap_or_else(|p| p.into_inner());
        sweep_stale();
        let used = ip(&["-4", "-o", "addr", "show"])?;
        let pid = std::process::id();
        let block = (0..51u8)
            .map(|i| 200 + ((pid as u8 % 51) + i) % 51)
            .find(|b| !used.contains(&format!(" 10.{b}.")))
            .ok_or("no free 10.x/16 between 10.200 and 10.250")?;
        let name = format!("vgrb{pid}x{}", NEXT.fetch_add(1, Ordering::SeqCst));
        ip(&["link", "add", &name, "type", "bridge"])?;
        let bridge = Self { name, block, host_ip: Ipv4Addr::new(10, block, 0, 1) };
        // A fixed MAC: otherwise the bridge takes its lowest port's, which changes as VMs
        // come and go, and the VMs' cached entry for the host goes stale mid-run.
        ip(&["link", "set", &bridge.name, "address", &format!("02:00:0a:{block:02x}:00:01")])?;
        ip(&["addr", "add", &format!("{}/16", bridge.host_ip), "dev", &bridge.name])?;
        ip(&["link", "set", &bridge.name, "up"])?;
        Ok(bridge)
    }

    /// A new namespace whose `eth0` has `addr` on this bridge, default route via the host.
    pub fn add_vm(&self, addr: Ipv4Addr) -> Result<Netns, String> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let ns = Netns { name: format!("vgr{pid}-{n}") };
        // A reimaged VM keeps its address but gets a new interface (a new MAC): forget
        // the old one, or the host would answer the old MAC until its ARP entry expires.
        let _ = ip(&["neigh", "flush", "to", &addr.to_string(), "dev", &self.name]);
        let (host, peer) = (format!("vh{pid}_{n}"), format!("vp{pid}_{n}"));
        ip(&["netns", "add", &ns.name])?;
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&["link", "set", &host, "master", &self.name])?;
        ip(&["link", "set", &host, "up"])?;
        ip(&["-n", &ns.name, "link", "set", &peer, "name", "eth0"])?;
        ip(&["-n", &ns.name, "addr", "add", &format!("{addr}/16"), "dev", "eth0"])?;
        ip(&["-n", &ns.name, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns.name, "route", "add", "default", "via", &self.host_ip.to_string()])?;
        Ok(ns)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// One VM's namespace. Dropping it kills what runs inside and deletes it (its veth
/// pair goes with it).
pub struct Netns {
    pub name: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
