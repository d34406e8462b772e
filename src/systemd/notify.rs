//! The service manager protocol (sd_notify): READY=1 once the workers can accept,
//! STATUS= lines for `systemctl status`, RELOADING=1 with MONOTONIC_USEC during a
//! reload, STOPPING=1, and a watchdog that is only fed while the pool is healthy, so
//! a wedged master is restarted by systemd (WatchdogSec=) while the socket, held by
//! systemd, keeps queueing connections.
//!
//! Every call is a no-op without NOTIFY_SOCKET. The environment is left in place on
//! purpose: a master that re-executes itself on reload keeps its pid, so the new image
//! must still find NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID. (Workers never notify:
//! the unit says NotifyAccess=main.)
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::logging::{self, Level};

/// What the master knows about its own health when it feeds the watchdog. The
/// master's loop running is implied: [`Notifier::tick`] is called from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Every scoreboard slot is readable and belongs to a live worker.
    pub scoreboard_consistent: bool,
    /// The last fork succeeded (or none was needed).
    pub can_fork: bool,
    /// Too many workers died recently (emergency_restart_threshold): the master is
    /// about to give up and be restarted.
    pub emergency_restart_pending: bool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            scoreboard_consistent: true,
            can_fork: true,
            emergency_restart_pending: false,
        }
    }
}

impl Health {
    /// Why the pool is unhealthy, or `None` when the watchdog may be fed.
    pub fn problem(&self) -> Option<&'static str> {
        if self.emergency_restart_pending {
            Some("an emergency restart is pending")
        } else if !self.can_fork {
            Some("workers cannot be forked")
        } else if !self.scoreboard_consistent {
            Some("the scoreboard is inconsistent")
        } else {
            None
        }
    }
}

/// Pool counters for the STATUS= line, read from the scoreboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Workers serving a request.
    pub active: u32,
    /// Workers waiting in accept().
    pub idle: u32,
    /// Requests served since the master started.
    pub requests: u64,
    /// Requests that exceeded request_slowlog_timeout.
    pub slow: u64,
}

impl Stats {
    /// php-fpm's STATUS= text (`fpm_systemd.c`), so dashboards that parse it keep working:
    /// `Processes active: 0, idle: 2, Requests: 10, slow: 0, Traffic: 0.5req/sec`.
    pub fn status_line(&self, req_per_sec: f64) -> String {
        format!(
            "Processes active: {}, idle: {}, Requests: {}, slow: {}, Traffic: {}req/sec",
            self.active,
            self.idle,
            self.requests,
            self.slow,
            three_significant(req_per_sec)
        )
    }
}

/// printf's `%.3g` for the non-negative rates the STATUS line shows.
fn three_significant(x: f64) -> String {
    if !x.is_finite() || x <= 0.0 {
        return "0".to_string();
    }
    if x >= 999.5 {
        return format!("{x:.0}");
    }
    let decimals = (2 - x.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Talks to systemd for the master. Create it once with [`Notifier::from_env`].
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    /// How often to send WATCHDOG=1: half of WatchdogSec=, as sd_watchdog_enabled(3) advises.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    status_every: Duration,
    last_status: Option<(Instant, u64)>,
    unhealthy: Option<&'static str>,
    send_failed: bool,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID, leaving them in place.
    /// `status_every` is php-fpm's `systemd_interval` (0 turns the refresh off).
    pub fn from_env(status_every: Duration) -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0u64;
        let watchdog = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec));
        Self::new(enabled, watchdog, status_every)
    }

    /// A notifier with the given settings (tests, or a master that knows better).
    pub fn new(enabled: bool, watchdog: Option<Duration>, status_every: Duration) -> Self {
        Notifier {
            enabled,
            ping_every: watchdog.map(|w| w / 2),
            last_ping: None,
            status_every,
            last_status: None,
            unhealthy: None,
            send_failed: false,
        }
    }

    /// Whether systemd listens (NOTIFY_SOCKET is set).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog period systemd asked for (WatchdogSec=), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.ping_every.map(|p| p * 2)
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            // once: a broken notify socket must not flood the log every second
            if !self.send_failed {
                self.send_failed = true;
                logging::log(
                    Level::Warning,
                    &format!("cannot notify systemd (NOTIFY_SOCKET): {e}"),
                );
            }
        }
    }

    /// READY=1 with a first STATUS= line: call once the workers are forked and the
    /// listening sockets are theirs. Also feeds the watchdog.
    pub fn ready(&mut self, status: &str) {
        let pid = std::process::id();
        self.send(&[
            NotifyState::Ready,
            NotifyState::Status(status),
            NotifyState::MainPid(pid),
        ]);
        self.ping(Instant::now());
    }

    /// RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload expects), then
    /// call [`Notifier::ready`] when the reloaded master serves.
    pub fn reloading(&mut self) {
        let mut states = vec![NotifyState::Reloading, NotifyState::Status("Reloading")];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// STOPPING=1: the master stops its workers and exits.
    pub fn stopping(&mut self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// A STATUS= line now.
    pub fn status(&mut self, line: &str) {
        self.send(&[NotifyState::Status(line)]);
    }

    /// WATCHDOG=trigger: systemd treats the service as failed now (WatchdogSignal=,
    /// then Restart=on-failure). The socket stays with systemd.
    pub fn watchdog_trigger(&mut self, why: &str) {
        logging::log(
            Level::Alert,
            &format!("asking systemd to restart the service: {why}"),
        );
        self.send(&[NotifyState::WatchdogTrigger, NotifyState::Status(why)]);
    }

    fn ping(&mut self, now: Instant) {
        if self.ping_every.is_some() {
            self.send(&[NotifyState::Watchdog]);
            self.last_ping = Some(now);
        }
    }

    /// Call from every turn of the master's loop: sends WATCHDOG=1 when half the
    /// watchdog period has passed and `health` is good. While it is not, nothing is
    /// sent, so systemd restarts the service after WatchdogSec=. Returns whether a
    /// ping was sent.
    pub fn tick(&mut self, now: Instant, health: &Health) -> bool {
        let Some(every) = self.ping_every else {
            return false;
        };
        match (health.problem(), self.unhealthy) {
            (Some(p), None) => {
                logging::log(
                    Level::Warning,
                    &format!("not feeding the systemd watchdog: {p}"),
                );
                self.unhealthy = Some(p);
            }
            (None, Some(_)) => {
                logging::log(Level::Notice, "healthy again: feeding the systemd watchdog");
                self.unhealthy = None;
            }
            _ => {}
        }
        if self.unhealthy.is_some() {
            return false;
        }
        let due = self
            .last_ping
            .map_or(true, |last| now.saturating_duration_since(last) >= every);
        if due {
            self.ping(now);
        }
        due
    }

    /// How long the master's loop may sleep before the next watchdog ping is due
    /// (`None` without a watchdog). Poll with at most this timeout.
    pub fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        let every = self.ping_every?;
        Some(match self.last_ping {
            None => Duration::ZERO,
            Some(last) => every.saturating_sub(now.saturating_duration_since(last)),
        })
    }

    /// Sends php-fpm's STATUS= line when `systemd_interval` has passed since the last
    /// one, with the request rate over that interval. Returns whether it was sent.
    pub fn refresh_status(&mut self, now: Instant, stats: &Stats) -> bool {
        if self.status_every.is_zero() {
            return false;
        }
        let rate = match self.last_status {
            Some((at, _)) if now.saturating_duration_since(at) < self.status_every => return false,
            Some((at, requests)) => {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                stats.requests.saturating_sub(requests) as f64 / secs.max(0.001)
            }
            None => 0.0,
        };
        self.last_status = Some((now, stats.requests));
        let line = stats.status_line(rate);
        self.status(&line);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_reads_like_php_fpms() {
        let s = Stats {
            active: 1,
            idle: 3,
            requests: 42,
            slow: 0,
        };
        assert_eq!(
            s.status_line(0.5),
            "Processes active: 1, idle: 3, Requests: 42, slow: 0, Traffic: 0.5req/sec"
        );
        assert_eq!(three_significant(0.0), "0");
        assert_eq!(three_significant(12.345), "12.3");
        assert_eq!(three_significant(100.0), "100");
        assert_eq!(three_significant(0.01234), "0.0123");
        assert_eq!(three_significant(2500.4), "2500");
    }

    #[test]
    fn the_watchdog_is_fed_every_half_period_only_while_healthy() {
        // disabled notifier: the logic runs, nothing is sent
        let mut n = Notifier::new(false, Some(Duration::from_secs(10)), Duration::ZERO);
        let t0 = Instant::now();
        let ok = Health::default();
        assert!(n.tick(t0, &ok), "first tick pings");
        assert!(!n.tick(t0 + Duration::from_secs(4), &ok));
        assert_eq!(
            n.next_wakeup(t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(1))
        );
        assert!(n.tick(t0 + Duration::from_secs(5), &ok));
        let sick = Health {
            can_fork: false,
            ..Health::default()
        };
        assert!(!n.tick(t0 + Duration::from_secs(11), &sick));
        assert!(!n.tick(t0 + Duration::from_secs(20), &sick));
        assert!(n.tick(t0 + Duration::from_secs(21), &ok), "recovered");
    }

    #[test]
    fn without_a_watchdog_nothing_is_due() {
        let mut n = Notifier::new(false, None, Duration::ZERO);
        assert!(!n.tick(Instant::now(), &Health::default()));
        assert_eq!(n.next_wakeup(Instant::now()), None);
    }

    #[test]
    fn the_status_refresh_waits_for_its_interval_and_measures_the_rate() {
        let mut n = Notifier::new(false, None, Duration::from_secs(10));
        let t0 = Instant::now();
        let mut s = Stats::default();
        assert!(n.refresh_status(t0, &s));
        s.requests = 50;
        assert!(!n.refresh_status(t0 + Duration::from_secs(5), &s));
        assert!(n.refresh_status(t0 + Duration::from_secs(10), &s));
        assert_eq!(n.last_status, Some((t0 + Duration::from_secs(10), 50)));
    }

    #[test]
    fn health_names_its_first_problem() {
        assert_eq!(Health::default().problem(), None);
        let h = Health {
            emergency_restart_pending: true,
            can_fork: false,
            ..Health::default()
        };
        assert_eq!(h.problem(), Some("an emergency restart is pending"));
    }
}
