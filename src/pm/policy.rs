//! The process manager's decisions, as plain functions of counts and clocks so they
//! can be tested without forking: how many workers a dynamic pool adds or removes,
//! each worker's share of `pm.max_requests`, and when crashes add up to an
//! emergency restart.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one maintenance tick of a `pm = dynamic` pool decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicStep {
    /// Nothing to do.
    Hold,
    /// Stop one idle worker (more than `pm.max_spare_servers` idle).
    KillOneIdle,
    /// Fork this many.
    Spawn(u32),
    /// Fewer than `pm.min_spare_servers` idle and no room: `pm.max_children` reached.
    AtMaxChildren,
}

/// The state a dynamic pool carries between ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnRate(pub u32);

impl Default for SpawnRate {
    fn default() -> Self {
        SpawnRate(1)
    }
}

/// The bounds of a dynamic pool.
#[derive(Debug, Clone, Copy)]
pub struct DynamicBounds {
    /// `pm.max_children`.
    pub max_children: u32,
    /// `pm.min_spare_servers`.
    pub min_spare: u32,
    /// `pm.max_spare_servers`.
    pub max_spare: u32,
    /// `pm.max_spawn_rate`.
    pub max_spawn_rate: u32,
}

/// php-fpm's idle server maintenance for `pm = dynamic`, once per second: above the
/// spare maximum one idle worker leaves; below the spare minimum the pool forks
/// `rate` workers and doubles the rate for the next second, up to `pm.max_spawn_rate`.
pub fn dynamic_step(
    b: &DynamicBounds,
    idle: u32,
    running: u32,
    rate: &mut SpawnRate,
) -> DynamicStep {
    if idle > b.max_spare {
        rate.0 = 1;
        return DynamicStep::KillOneIdle;
    }
    if idle >= b.min_spare {
        rate.0 = 1;
        return DynamicStep::Hold;
    }
    let room = b.max_children.saturating_sub(running);
    let n = rate.0.min(b.min_spare - idle).min(room);
    if n == 0 {
        rate.0 = 1;
        return DynamicStep::AtMaxChildren;
    }
    if rate.0 < b.max_spawn_rate {
        rate.0 = (rate.0 * 2).min(b.max_spawn_rate);
    }
    DynamicStep::Spawn(n)
}

/// SplitMix64: a few multiply-xorshift rounds, enough to spread seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A worker's own request limit: uniform in `[max - max/4, max]`, so workers
/// started together leave at different times, and none serves more than configured.
pub fn max_requests_for(max: u64, seed: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let spread = max / 4;
    max - mix(seed) % (spread + 1)
}

/// `emergency_restart_threshold` crashes (SIGSEGV/SIGBUS) within
/// `emergency_restart_interval` ask for a restart of the engine.
#[derive(Debug, Clone)]
pub struct FaultWindow {
    threshold: usize,
    interval: Duration,
    recent: VecDeque<Instant>,
}

impl FaultWindow {
    /// A window; a threshold or interval of 0 disables it, as in php-fpm.
    pub fn new(threshold: u32, interval: Duration) -> Self {
        FaultWindow {
            threshold: threshold as usize,
            interval,
            recent: VecDeque::new(),
        }
    }

    /// Records a crash at `now`; true when the threshold is reached.
    pub fn record(&mut self, now: Instant) -> bool {
        if self.threshold == 0 || self.interval.is_zero() {
            return false;
        }
        self.recent.push_back(now);
        while self.recent.len() > self.threshold {
            self.recent.pop_front();
        }
        let reached = self.recent.len() == self.threshold
            && self
                .recent
                .front()
                .is_some_and(|first| now.duration_since(*first) <= self.interval);
        if reached {
            self.recent.clear();
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: DynamicBounds = DynamicBounds {
        max_children: 10,
        min_spare: 2,
        max_spare: 4,
        max_spawn_rate: 32,
    };

    #[test]
    fn dynamic_grows_with_a_doubling_rate_and_stops_at_max_children() {
        let mut rate = SpawnRate::default();
        assert_eq!(dynamic_step(&B, 0, 3, &mut rate), DynamicStep::Spawn(1));
        assert_eq!(rate.0, 2);
        assert_eq!(dynamic_step(&B, 0, 4, &mut rate), DynamicStep::Spawn(2));
        assert_eq!(rate.0, 4);
        // never more than needed to reach min_spare, nor beyond max_children
        assert_eq!(dynamic_step(&B, 1, 6, &mut rate), DynamicStep::Spawn(1));
        assert_eq!(
            dynamic_step(&B, 0, 10, &mut rate),
            DynamicStep::AtMaxChildren
        );
        assert_eq!(rate.0, 1);
    }

    #[test]
    fn dynamic_shrinks_one_per_tick_above_max_spare_and_holds_between() {
        let mut rate = SpawnRate(8);
        assert_eq!(dynamic_step(&B, 5, 8, &mut rate), DynamicStep::KillOneIdle);
        assert_eq!(rate.0, 1);
        assert_eq!(dynamic_step(&B, 3, 8, &mut rate), DynamicStep::Hold);
        assert_eq!(dynamic_step(&B, 4, 8, &mut rate), DynamicStep::Hold);
    }

    #[test]
    fn spawn_rate_is_capped_by_max_spawn_rate() {
        let b = DynamicBounds {
            max_children: 1000,
            min_spare: 500,
            max_spare: 600,
            max_spawn_rate: 5,
        };
        let mut rate = SpawnRate::default();
        let steps: Vec<_> = (0..5).map(|_| dynamic_step(&b, 0, 1, &mut rate)).collect();
        use DynamicStep::Spawn;
        assert_eq!(steps, [Spawn(1), Spawn(2), Spawn(4), Spawn(5), Spawn(5)]);
    }

    #[test]
    fn max_requests_spread_stays_within_a_quarter_below_the_setting() {
        assert_eq!(max_requests_for(0, 1), 0);
        let limits: Vec<u64> = (0..1000).map(|s| max_requests_for(100, s)).collect();
        assert!(limits.iter().all(|&l| (75..=100).contains(&l)));
        let distinct: std::collections::BTreeSet<_> = limits.iter().collect();
        assert!(distinct.len() > 20, "the limits must spread: {distinct:?}");
        assert_eq!(max_requests_for(1, 7), 1);
    }

    #[test]
    fn faults_trigger_only_within_the_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = FaultWindow::new(3, s(10));
        assert!(!w.record(t0));
        assert!(!w.record(t0 + s(1)));
        assert!(
            w.record(t0 + s(2)),
            "three crashes in 2 s reach a threshold of 3 in 10 s"
        );
        // the window starts over after a restart
        assert!(!w.record(t0 + s(3)));
        let mut slow = FaultWindow::new(3, s(10));
        assert!(!slow.record(t0));
        assert!(!slow.record(t0 + s(6)));
        assert!(
            !slow.record(t0 + s(12)),
            "spread over 12 s: below the threshold"
        );
        assert!(slow.record(t0 + s(13)), "the last three are within 10 s");
        let mut off = FaultWindow::new(0, s(10));
        assert!(!(0..100).any(|i| off.record(t0 + Duration::from_millis(i))));
    }
}
