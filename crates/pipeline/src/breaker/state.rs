//! The breaker's state machine, shared by every clone of the service and by the
//! operator's [`BreakerHandle`].

use crate::sync;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::time::Instant;

use super::window::{Totals, Window};
use super::BreakerConfig;

/// The breaker's state as operators and metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; outcomes fill the sliding window.
    Closed,
    /// Calls are refused (the service is not ready) until the wait ends.
    Open,
    /// A few probe calls are admitted; their outcomes decide open or closed.
    HalfOpen,
    /// Held open by an operator until [`BreakerHandle::reset`].
    ForcedOpen,
    /// Always admits and records nothing, until [`BreakerHandle::reset`].
    Disabled,
}

impl BreakerState {
    /// The value of the `sluice_pipeline_breaker_state` gauge: 0 closed, 1 open,
    /// 2 half-open, 3 forced open, 4 disabled.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
            BreakerState::ForcedOpen => 3.0,
            BreakerState::Disabled => 4.0,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, results: Totals },
    ForcedOpen,
    Disabled,
}

#[derive(Debug)]
struct Machine {
    phase: Phase,
    /// Bumped on every transition, so a permit from an earlier phase is not counted in
    /// the current one.
    generation: u64,
    window: Window,
    waiters: Vec<Waker>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: BreakerConfig,
    machine: Mutex<Machine>,
}

/// The outcome of asking for admission.
#[derive(Debug)]
pub(crate) enum Admission {
    Admitted(Permit),
    /// Open: retry at this instant (the caller arms a timer).
    OpenUntil(Instant),
    /// Half-open and full, or forced open: the waker is woken on the next transition.
    Parked,
}

/// One admitted call. Dropping it without [`Permit::complete`] (the call was cancelled,
/// or the service dropped before calling) gives a half-open slot back.
#[derive(Debug)]
pub(crate) struct Permit {
    shared: Arc<Shared>,
    generation: u64,
    done: bool,
}

impl Shared {
    pub(crate) fn new(config: BreakerConfig) -> Arc<Self> {
        let window = Window::new(config.window, Instant::now());
        let shared = Arc::new(Shared {
            config,
            machine: Mutex::new(Machine {
                phase: Phase::Closed,
                generation: 0,
                window,
                waiters: Vec::new(),
            }),
        });
        shared.publish(BreakerState::Closed);
        shared
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // The machine's invariants hold between statements; a panic elsewhere while
        // holding the lock leaves it usable.
        sync::lock(&self.machine)
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!(crate::metrics::BREAKER_STATE, "breaker" => self.config.name.clone())
            .set(state.gauge_value());
    }

    pub(crate) fn state(&self) -> BreakerState {
        view(&self.lock().phase)
    }

    pub(crate) fn admit(self: &Arc<Self>, waker: &Waker) -> Admission {
        let mut m = self.lock();
        if let Phase::Open { until } = m.phase {
            if Instant::now() < until {
                return Admission::OpenUntil(until);
            }
            let results = Totals::default();
            self.transition(
                &mut m,
                Phase::HalfOpen {
                    admitted: 0,
                    results,
                },
            );
        }
        let generation = m.generation;
        let permit = Permit {
            shared: self.clone(),
            generation,
            done: false,
        };
        match &mut m.phase {
            Phase::Closed | Phase::Disabled => Admission::Admitted(permit),
            Phase::HalfOpen { admitted, .. } if *admitted < self.config.permitted_in_half_open => {
                *admitted += 1;
                Admission::Admitted(permit)
            }
            Phase::HalfOpen { .. } | Phase::ForcedOpen | Phase::Open { .. } => {
                // The permit was never handed out: do not let its drop give a slot back.
                let mut permit = permit;
                permit.done = true;
                if !m.waiters.iter().any(|w| w.will_wake(waker)) {
                    m.waiters.push(waker.clone());
                }
                Admission::Parked
            }
        }
    }

    fn record(&self, generation: u64, outcome: Option<(bool, bool)>, now: Instant) {
        let mut m = self.lock();
        if m.generation != generation {
            return;
        }
        let cfg = &self.config;
        let trips = |t: Totals| {
            let calls = f64::from(t.calls.max(1));
            f64::from(t.failures) / calls >= cfg.failure_rate
                || f64::from(t.slow) / calls >= cfg.slow_call_rate
        };
        match (&mut m.phase, outcome) {
            (Phase::Closed, Some((failed, slow))) => {
                m.window.record(now, failed, slow);
                let totals = m.window.totals(now);
                if totals.calls >= cfg.minimum_calls && trips(totals) {
                    let until = now + cfg.wait_in_open;
                    self.transition(&mut m, Phase::Open { until });
                }
            }
            (Phase::HalfOpen { admitted, results }, outcome) => {
                match outcome {
                    Some((failed, slow)) => results.add(failed, slow),
                    // A cancelled probe: free its slot for another.
                    None => *admitted = admitted.saturating_sub(1),
                }
                let results = *results;
                if results.calls >= cfg.permitted_in_half_open {
                    let next = if trips(results) {
                        Phase::Open {
                            until: now + cfg.wait_in_open,
                        }
                    } else {
                        Phase::Closed
                    };
                    self.transition(&mut m, next);
                } else if outcome.is_none() {
                    wake_all(&mut m);
                }
            }
            _ => {}
        }
    }

    fn transition(&self, m: &mut Machine, phase: Phase) {
        let state = view(&phase);
        tracing::info!(breaker = %self.config.name, from = ?view(&m.phase), to = ?state, "circuit breaker");
        m.phase = phase;
        m.generation += 1;
        m.window.clear();
        wake_all(m);
        self.publish(state);
    }

    pub(crate) fn set(&self, state: BreakerState) {
        let mut m = self.lock();
        let phase = match state {
            BreakerState::Closed => Phase::Closed,
            BreakerState::Open => Phase::Open {
                until: Instant::now() + self.config.wait_in_open,
            },
            BreakerState::HalfOpen => Phase::HalfOpen {
                admitted: 0,
                results: Totals::default(),
            },
            BreakerState::ForcedOpen => Phase::ForcedOpen,
            BreakerState::Disabled => Phase::Disabled,
        };
        self.transition(&mut m, phase);
    }
}

fn wake_all(m: &mut Machine) {
    for w in m.waiters.drain(..) {
        w.wake();
    }
}

fn view(phase: &Phase) -> BreakerState {
    match phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open { .. } => BreakerState::Open,
        Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        Phase::ForcedOpen => BreakerState::ForcedOpen,
        Phase::Disabled => BreakerState::Disabled,
    }
}

impl Permit {
    /// Records the call's outcome.
    pub(crate) fn complete(mut self, failed: bool, slow: bool, now: Instant) {
        self.done = true;
        self.shared
            .record(self.generation, Some((failed, slow)), now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.shared.record(self.generation, None, Instant::now());
        }
    }
}

/// Operator controls over one breaker, shared by every service its layer built.
#[derive(Debug, Clone)]
pub struct BreakerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl BreakerHandle {
    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }

    /// Holds the breaker open (no calls admitted) until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.shared.set(BreakerState::ForcedOpen);
    }

    /// Turns the breaker off (everything admitted, nothing recorded) until
    /// [`reset`](Self::reset).
    pub fn disable(&self) {
        self.shared.set(BreakerState::Disabled);
    }

    /// Closes the breaker with an empty window, waking every parked caller.
    pub fn reset(&self) {
        self.shared.set(BreakerState::Closed);
    }
}

impl Permit {
    pub(crate) fn slow_call_duration(&self) -> std::time::Duration {
        self.shared.config.slow_call_duration
    }
}
