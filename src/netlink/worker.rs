//! The sync's worker thread: drain the change queues in batches, program
//! the kernel, resynchronise when the kernel's state is unknown.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::kernel::{DUMP_BUFFER, Kernel, Monitor, Unreadable};
use super::view::{KernelView, Outcome};
use super::{Interfaces, KernelFamily, KernelRoute, Op, SyncConfig, SyncError};
use crate::client::{ClientHandle, RegisterOptions};
use crate::criteria::Criteria;
use crate::family::{Ipv4, Ipv6};
use crate::notify::Notifier;
use crate::prefix::Prefix;
use crate::route::Route;
use crate::rtm::Rtm;

/// What the sync has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStats {
    /// Change messages taken from rtm's queues.
    pub changes: u64,
    /// rtm's routes created in the kernel (where it held none of rtm's).
    pub created: u64,
    /// rtm's routes rewritten in the kernel (another next hop or device).
    pub replaced: u64,
    /// rtm's routes deleted from the kernel.
    pub deleted: u64,
    /// Deletes of routes the kernel no longer had (already as wanted).
    pub already_gone: u64,
    /// Times rtm did not write a route because another protocol's route
    /// holds its key (same table, prefix and metric): the other route
    /// stays. `last_conflict` says which.
    pub conflicts: u64,
    /// The last conflict's route.
    pub last_conflict: Option<String>,
    /// Operations the kernel refused (a device that does not exist, say);
    /// `last_refusal` says which and why. They are not retried until the
    /// network changes again or a resynchronisation.
    pub refused: u64,
    /// The last refused operation and the kernel's error.
    pub last_refusal: Option<String>,
    /// Batches sent.
    pub batches: u64,
    /// Full resynchronisations (dump, diff, repair): one at start, one per
    /// `ENOBUFS`, one per [`KernelSync::resync`].
    pub resyncs: u64,
    /// `ENOBUFS` answers (acknowledgements or notifications lost).
    pub enobufs: u64,
    /// Changes to routes at rtm's keys in its kernel table made by other
    /// programs while the sync ran (the kernel's route notifications),
    /// each answered by re-programming that prefix.
    pub foreign: u64,
    /// Route notifications that reached the sync: other programs' changes
    /// in rtm's table (the kernel drops rtm's own and other tables' before
    /// they reach it).
    pub notifications: u64,
    /// Datagrams on the notification socket that did not come from the
    /// kernel, dropped unread.
    pub spoofed: u64,
    /// Devices that went up, down or away, and addresses removed, each
    /// answered by a resynchronisation: the kernel drops routes through a
    /// device that goes down without a notification per route (IPv4), and
    /// takes rtm's again only when asked once the device is back.
    pub link_events: u64,
    /// Route messages that did not read (a dump's or a notification's),
    /// skipped; `last_unreadable` says why.
    pub unreadable: u64,
    /// The last unreadable message's fault.
    pub last_unreadable: Option<String>,
    /// Route messages read by dumps: rtm's table's routes of every
    /// protocol (dumps are strict, Linux 4.20 on; an older kernel sends
    /// every table's, which the sync skips).
    pub dumped: u64,
    /// rtm's routes kept in the kernel, stale, until the RIB converges
    /// (found at start, not yet in rtm).
    pub stale: u64,
    /// The RIB has converged ([`KernelSync::converged`], or the stale
    /// hold ended, or nothing was stale): withdrawals all go out at once.
    pub converged: bool,
    /// Seconds spent in the kernel's calls (send and acknowledgements).
    pub kernel_secs: f64,
    /// Why the worker stopped, if it failed.
    pub failure: Option<String>,
}

impl SyncStats {
    /// Kernel operations per second of kernel time: the rate rtm programs
    /// routes at when it has work.
    pub fn ops_per_sec(&self) -> f64 {
        (self.created + self.replaced + self.deleted + self.already_gone + self.refused) as f64
            / self.kernel_secs.max(1e-9)
    }

    /// Routes written into the kernel: created or replaced.
    pub fn written(&self) -> u64 {
        self.created + self.replaced
    }
}

/// The worker's state as others see it.
#[derive(Debug, Default)]
struct Bell {
    /// A queue became non-empty since the worker last looked.
    rung: bool,
    /// The worker found both queues empty with nothing in flight.
    idle: bool,
    /// The worker ended.
    ended: bool,
}

struct Shared {
    stop: AtomicBool,
    resync: AtomicBool,
    converge: AtomicBool,
    bell: Mutex<Bell>,
    changed: Condvar,
    stats: Mutex<SyncStats>,
}

impl Shared {
    fn bell(&self) -> std::sync::MutexGuard<'_, Bell> {
        self.bell.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn stats(&self) -> std::sync::MutexGuard<'_, SyncStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Rings the worker's bell when a queue becomes non-empty. Runs on a
/// writer's thread under the queue's lock: one uncontended lock and a
/// wake, no system call unless the worker sleeps.
struct Doorbell(Arc<Shared>);

impl Notifier for Doorbell {
    fn set(&self) {
        self.0.bell().rung = true;
        self.0.changed.notify_all();
    }
    fn reset(&self) {}
}

/// A running kernel FIB sync (see the [module docs](super)). Stop it with
/// [`KernelSync::stop`]; dropping it stops it too. Stopping leaves the
/// kernel table as it is (its routes keep forwarding); the next sync's
/// start repairs it.
pub struct KernelSync {
    rtm: Rtm,
    v4: ClientHandle<Ipv4>,
    v6: ClientHandle<Ipv6>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), SyncError>>>,
}

impl KernelSync {
    /// Registers the sync's clients, opens the rtnetlink socket and starts
    /// the worker, which first resynchronises the whole table. Fails if the
    /// table id is 0, the client protocol is taken or the socket cannot be
    /// opened; nothing is left registered then.
    pub fn start(rtm: &Rtm, config: SyncConfig) -> Result<KernelSync, SyncError> {
        if config.table == 0 {
            return Err(SyncError::Config(
                "table 0 is RT_TABLE_UNSPEC, not a routing table (254 is main)".into(),
            ));
        }
        let kernel = Kernel::open(config.receive_buffer).map_err(SyncError::Netlink)?;
        let monitor = Monitor::open().map_err(SyncError::Netlink)?;
        monitor
            .filter(kernel.port(), config.table)
            .map_err(SyncError::Netlink)?;
        let v4 = rtm
            .register::<Ipv4>(config.client_protocol, RegisterOptions::coalescing())
            .map_err(SyncError::Register)?;
        let v6 = match rtm.register::<Ipv6>(config.client_protocol, RegisterOptions::coalescing()) {
            Ok(c) => c,
            Err(e) => {
                let _ = rtm.deregister(&v4);
                return Err(SyncError::Register(e));
            }
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            resync: AtomicBool::new(true),
            converge: AtomicBool::new(false),
            bell: Mutex::new(Bell::default()),
            changed: Condvar::new(),
            stats: Mutex::new(SyncStats::default()),
        });
        // Registered just now, so the queues exist: these cannot fail.
        let _ = v4.set_notifier(Arc::new(Doorbell(shared.clone())));
        let _ = v6.set_notifier(Arc::new(Doorbell(shared.clone())));
        let converged = config.stale_hold.is_zero();
        let mut worker = Worker {
            views: Views {
                v4: KernelView::new(Ipv4::stored_metric(config.metric), converged),
                v6: KernelView::new(Ipv6::stored_metric(config.metric), converged),
            },
            started: Instant::now(),
            rtm: rtm.clone(),
            v4: v4.clone(),
            v6: v6.clone(),
            shared: shared.clone(),
            config: SyncConfig {
                batch: config.batch.clamp(1, MAX_BATCH),
                ..config
            },
            kernel,
            monitor,
        };
        let thread = std::thread::Builder::new()
            .name("rtm-kernel-sync".into())
            .spawn(move || {
                let result = worker.run();
                if let Err(e) = &result {
                    worker.shared.stats().failure = Some(e.to_string());
                }
                worker.shared.bell().ended = true;
                worker.shared.changed.notify_all();
                result
            })
            .map_err(SyncError::Netlink)?;
        Ok(KernelSync {
            rtm: rtm.clone(),
            v4,
            v6,
            shared,
            thread: Some(thread),
        })
    }

    /// What the sync has done so far.
    pub fn stats(&self) -> SyncStats {
        self.shared.stats().clone()
    }

    /// Asks for a full resynchronisation (dump, diff, repair), for a kernel
    /// table someone else may have changed.
    pub fn resync(&self) {
        self.shared.resync.store(true, Ordering::SeqCst);
        self.shared.bell().rung = true;
        self.shared.changed.notify_all();
    }

    /// Says the RIB has converged (its protocols have loaded, or sent
    /// end-of-RIB): rtm's routes found in the kernel at start that rtm has
    /// no route for now are withdrawn, and from now on every withdrawal
    /// goes out at once. Until this or the end of
    /// [`SyncConfig::stale_hold`], they stay and forward.
    pub fn converged(&self) {
        self.shared.converge.store(true, Ordering::SeqCst);
        self.shared.bell().rung = true;
        self.shared.changed.notify_all();
    }

    /// Waits until every change made before the call is in the kernel
    /// (`true`), or `timeout` passes or the worker has failed (`false`).
    /// A [`resync`](Self::resync) or [`converged`](Self::converged) asked
    /// for before the call is done by then too.
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // The queues first, outside the bell's lock (the doorbell takes
            // the bell under a queue's lock). A change made before the call
            // is then still queued (seen here) or taken by the worker, which
            // cleared `idle` before taking it.
            let queued = self.v4.pending().unwrap_or(0) + self.v6.pending().unwrap_or(0);
            let bell = self.shared.bell();
            if bell.ended {
                return false;
            }
            if queued == 0
                && bell.idle
                && !self.shared.resync.load(Ordering::SeqCst)
                && !self.shared.converge.load(Ordering::SeqCst)
            {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Short waits: a push rings the bell, but a worker going idle
            // is what this waits for, and it is announced too.
            let _ = self
                .shared
                .changed
                .wait_timeout(bell, (deadline - now).min(Duration::from_millis(20)));
        }
    }

    /// Stops the worker, deregisters the sync's clients and returns its
    /// statistics, or the error that ended the worker.
    pub fn stop(mut self) -> Result<SyncStats, SyncError> {
        self.halt()?;
        Ok(self.stats())
    }

    fn halt(&mut self) -> Result<(), SyncError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.bell().rung = true;
        self.shared.changed.notify_all();
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(SyncError::Netlink(io::Error::other(
                    "the kernel sync's worker panicked",
                )))
            }),
            None => Ok(()),
        };
        let _ = self.rtm.deregister(&self.v4);
        let _ = self.rtm.deregister(&self.v6);
        result
    }
}

impl Drop for KernelSync {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

impl std::fmt::Debug for KernelSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSync")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The kernel table as the sync knows it, per family.
struct Views {
    v4: KernelView<Ipv4>,
    v6: KernelView<Ipv6>,
}

/// A family's view among the [`Views`].
trait Viewed: KernelFamily {
    fn view(views: &mut Views) -> &mut KernelView<Self>;
}

impl Viewed for Ipv4 {
    fn view(views: &mut Views) -> &mut KernelView<Ipv4> {
        &mut views.v4
    }
}

impl Viewed for Ipv6 {
    fn view(views: &mut Views) -> &mut KernelView<Ipv6> {
        &mut views.v6
    }
}

struct Worker {
    rtm: Rtm,
    v4: ClientHandle<Ipv4>,
    v6: ClientHandle<Ipv6>,
    shared: Arc<Shared>,
    config: SyncConfig,
    kernel: Kernel,
    monitor: Monitor,
    views: Views,
    /// When the worker started: the stale hold counts from here.
    started: Instant,
}

/// The most messages one `send` carries: a batch must fit the socket's
/// send buffer (`net.core.wmem_default`, 208 KiB on most systems) or the
/// kernel refuses it whole (`EMSGSIZE`); 1,024 IPv6 routes are about
/// 100 KiB.
const MAX_BATCH: usize = 1024;

/// Transient answers after which the kernel's state is unknown: resync.
fn lost_track(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

impl Worker {
    fn run(&mut self) -> Result<(), SyncError> {
        while !self.shared.stop.load(Ordering::SeqCst) {
            {
                let mut b = self.shared.bell();
                b.rung = false;
                b.idle = false;
            }
            let mut worked = false;
            if self.shared.resync.swap(false, Ordering::SeqCst) {
                self.resync::<Ipv4>()?;
                self.resync::<Ipv6>()?;
                self.shared.stats().resyncs += 1;
                worked = true;
            }
            let asked = self.shared.converge.load(Ordering::SeqCst);
            if asked || self.started.elapsed() >= self.config.stale_hold {
                worked |= self.converge::<Ipv4>()? | self.converge::<Ipv6>()?;
                if asked {
                    self.shared.converge.store(false, Ordering::SeqCst);
                }
            }
            if self.shared.resync.load(Ordering::SeqCst) {
                continue; // a lost dump: the resync comes first
            }
            let v4 = self.v4.clone();
            let v6 = self.v6.clone();
            worked |= self.drain::<Ipv4>(&v4)? > 0;
            worked |= self.drain::<Ipv6>(&v6)? > 0;
            worked |= self.repair_foreign()? > 0;
            {
                let mut s = self.shared.stats();
                s.stale = (self.views.v4.stale() + self.views.v6.stale()) as u64;
                s.converged = self.views.v4.converged() && self.views.v6.converged();
            }
            if worked || self.shared.resync.load(Ordering::SeqCst) {
                continue;
            }
            let mut b = self.shared.bell();
            b.idle = true;
            self.shared.changed.notify_all();
            if !b.rung && !self.shared.stop.load(Ordering::SeqCst) {
                let _ = self
                    .shared
                    .changed
                    .wait_timeout(b, Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// The kernel's state is unknown after `e` (see [`lost_track`]): count
    /// an `ENOBUFS` and ask for a resync.
    fn lost_track(&self, e: &io::Error) {
        self.shared.stats().enobufs += u64::from(e.raw_os_error() == Some(libc::ENOBUFS));
        self.shared.resync.store(true, Ordering::SeqCst);
    }

    fn unreadable(&self, u: Unreadable) {
        if u.count > 0 {
            let mut s = self.shared.stats();
            s.unreadable += u.count;
            s.last_unreadable = u.last;
        }
    }

    fn kernel_route<F: KernelFamily>(&self, r: &Route<F>) -> KernelRoute<F> {
        KernelRoute {
            prefix: r.network,
            gateway: (r.next_hop != F::UNSPECIFIED).then_some(r.next_hop),
            oif: match self.config.interfaces {
                Interfaces::SameIndex => r.interface,
                Interfaces::Device(ifindex) => ifindex,
            },
        }
    }

    /// Sends `ops` in batches and records each outcome in the view;
    /// `ENOBUFS` and the like ask for a resync. Returns the prefixes to
    /// plan again: replaces that found rtm's route gone.
    fn apply<F: Viewed>(&mut self, ops: &[Op<F>]) -> Result<Vec<Prefix<F::Addr>>, SyncError> {
        let mut again = Vec::new();
        for chunk in ops.chunks(self.config.batch) {
            let t = Instant::now();
            let result = self.kernel.apply(chunk, &self.config);
            let secs = t.elapsed().as_secs_f64();
            let mut s = self.shared.stats();
            s.kernel_secs += secs;
            s.batches += 1;
            let outcomes = match result {
                Ok(outcomes) => outcomes,
                Err(e) if lost_track(&e) => {
                    drop(s);
                    self.lost_track(&e);
                    // A fresh socket: the old one may still hold the rest
                    // of the lost batch's acknowledgements, which would
                    // fill its buffer again.
                    self.kernel =
                        Kernel::open(self.config.receive_buffer).map_err(SyncError::Netlink)?;
                    self.monitor
                        .filter(self.kernel.port(), self.config.table)
                        .map_err(SyncError::Netlink)?;
                    return Ok(Vec::new());
                }
                Err(e) => return Err(SyncError::Netlink(e)),
            };
            let view = F::view(&mut self.views);
            for (op, outcome) in chunk.iter().zip(outcomes) {
                view.record(op, outcome);
                match (op, outcome) {
                    (Op::Create(_), Outcome::Done) => s.created += 1,
                    (Op::Replace(_), Outcome::Done) => s.replaced += 1,
                    (Op::Delete(..), Outcome::Done) => s.deleted += 1,
                    (_, Outcome::Gone) => s.already_gone += 1,
                    (_, Outcome::Exists) => {
                        s.conflicts += 1;
                        s.last_conflict =
                            Some(format!("{op}: another protocol's route holds the key"));
                    }
                    (_, Outcome::Missing) => again.push(op.prefix()),
                    (_, Outcome::Refused(code)) => {
                        s.refused += 1;
                        s.last_refusal =
                            Some(format!("{op}: {}", io::Error::from_raw_os_error(code)));
                    }
                }
            }
        }
        Ok(again)
    }

    /// Takes the queued changes of `F` in batches and programs each
    /// changed network's best route as it is now. Returns how many
    /// changes it took.
    fn drain<F: Viewed>(&mut self, client: &ClientHandle<F>) -> Result<usize, SyncError> {
        let mut taken = 0;
        loop {
            let mut networks = Vec::with_capacity(self.config.batch);
            while networks.len() < self.config.batch {
                match self.rtm.dequeue(client) {
                    Ok(d) => networks.extend(d.change.network()),
                    Err(_) => break,
                }
            }
            if networks.is_empty() {
                return Ok(taken);
            }
            taken += networks.len();
            self.shared.stats().changes += networks.len() as u64;
            self.program::<F>(networks)?;
            if self.shared.resync.load(Ordering::SeqCst) {
                // The resync reads everything afresh.
                return Ok(taken);
            }
        }
    }

    /// Brings each network to its best route as it is now (none: rtm's
    /// route goes), in batches.
    fn program<F: Viewed>(&mut self, mut networks: Vec<Prefix<F::Addr>>) -> Result<(), SyncError> {
        while !networks.is_empty() {
            networks.sort_unstable();
            networks.dedup();
            let mut ops = Vec::with_capacity(networks.len());
            for n in &networks {
                let want = self.rtm.is_route::<F>(n).map(|r| self.kernel_route(&r));
                let conflict = F::view(&mut self.views).plan(*n, want, &mut ops);
                self.conflict(conflict, n);
            }
            networks = self.apply(&ops)?;
        }
        Ok(())
    }

    fn conflict<A: std::fmt::Display>(&self, conflict: bool, prefix: &A) {
        if conflict {
            let mut s = self.shared.stats();
            s.conflicts += 1;
            s.last_conflict = Some(format!(
                "{prefix}: another protocol's route holds rtm's key (table {}, metric {})",
                self.config.table, self.config.metric
            ));
        }
    }

    /// Takes in the changes other programs made to rtm's table (the
    /// monitor's notifications) and re-programs each prefix they touched
    /// at rtm's keys; lost notifications ask for a resync. Returns how
    /// many changes it took in.
    fn repair_foreign(&mut self) -> Result<usize, SyncError> {
        let heard = match self.monitor.heard(&self.config, self.kernel.port()) {
            Ok(h) => h,
            Err(e) if lost_track(&e) => {
                self.lost_track(&e);
                return Ok(0);
            }
            Err(e) => return Err(SyncError::Netlink(e)),
        };
        let v4 = self.observe::<Ipv4>(&heard.v4);
        let v6 = self.observe::<Ipv6>(&heard.v6);
        let foreign = v4.len() + v6.len();
        {
            let mut s = self.shared.stats();
            s.notifications += heard.notifications;
            s.spoofed += heard.spoofed;
            s.foreign += foreign as u64;
            s.link_events += heard.link_events;
        }
        if heard.link_events > 0 {
            self.shared.resync.store(true, Ordering::SeqCst);
        }
        self.unreadable(heard.unreadable);
        self.program::<Ipv4>(v4)?;
        self.program::<Ipv6>(v6)?;
        Ok(foreign + heard.link_events as usize)
    }

    /// Takes other programs' changes of `F` into the view; the prefixes
    /// whose changes concern rtm's keys.
    fn observe<F: Viewed>(&mut self, seen: &[crate::netlink::Observed<F>]) -> Vec<Prefix<F::Addr>> {
        let view = F::view(&mut self.views);
        seen.iter()
            .filter(|s| view.observe(s))
            .map(|s| s.prefix)
            .collect()
    }

    /// The RIB has converged: the stale prefixes of `F` are planned
    /// against what rtm wants now. Whether there was anything to do.
    fn converge<F: Viewed>(&mut self) -> Result<bool, SyncError> {
        if F::view(&mut self.views).converged() {
            return Ok(false);
        }
        let stale = F::view(&mut self.views).converge();
        self.program::<F>(stale)?;
        Ok(true)
    }

    /// Dumps rtm's kernel table of `F`, rebuilds the view from it and
    /// sends the difference from rtm's best routes. Before the RIB has
    /// converged, rtm's routes it does not want yet stay, stale.
    fn resync<F: Viewed>(&mut self) -> Result<(), SyncError> {
        // Dumps read through a socket of their own with a large buffer:
        // the request socket's may be small, and a dump must not start
        // behind a lost batch's acknowledgements.
        let dumped = Kernel::open(DUMP_BUFFER).and_then(|mut k| k.dump::<F>(&self.config));
        let dump = match dumped {
            Ok(d) => d,
            Err(e) if lost_track(&e) => {
                self.lost_track(&e);
                // A kernel short of buffers gets a moment before the retry.
                std::thread::sleep(Duration::from_millis(10));
                return Ok(());
            }
            Err(e) => return Err(SyncError::Netlink(e)),
        };
        self.shared.stats().dumped += dump.read;
        self.unreadable(dump.unreadable);
        let wanted: Vec<KernelRoute<F>> =
            match self.rtm.enumerate(&Criteria::<F>::all().best_only()) {
                Ok(e) => e.map(|r| self.kernel_route(&r)).collect(),
                Err(_) => Vec::new(), // NoRoutes: an empty table
            };
        let view = F::view(&mut self.views);
        view.clear();
        for seen in &dump.routes {
            view.observe(seen);
        }
        let mut ops = Vec::new();
        let mut conflicts = Vec::new();
        for r in &wanted {
            if view.plan(r.prefix, Some(*r), &mut ops) {
                conflicts.push(r.prefix);
            }
        }
        let wanted: HashSet<Prefix<F::Addr>> = wanted.iter().map(|r| r.prefix).collect();
        let unwanted = view.unwanted(|p| wanted.contains(p));
        if view.converged() {
            for p in unwanted {
                view.plan(p, None, &mut ops);
            }
        } else if unwanted.is_empty() {
            view.converge(); // nothing waits for the RIB
        } else {
            view.keep_stale(unwanted);
        }
        for p in &conflicts {
            self.conflict(true, p);
        }
        let again = self.apply(&ops)?;
        self.program::<F>(again)
    }
}
