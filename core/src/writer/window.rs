//! The in-flight window controller (PROTOCOL.md §4 "The in-flight window"): how many WAL
//! entry puts may be in flight at once, between 1 and `max_in_flight`, chosen from what the
//! store did with the last ones. It has no clock and does no I/O: the writer tells it when
//! each put was sent and when it landed, on the host's injected clock, and asks it for the
//! window; so it is deterministic given those inputs.
//!
//! Why adapt: appends that find the window full join the next entry, so a smaller window
//! means fewer, larger puts (fewer requests to pay for, less per-request overhead on a fast
//! store) and a larger one more parallelism (what a slow store needs). No fixed value suits
//! both; the controller climbs towards the smallest window that still delivers the most
//! acknowledged bytes per second.

use core::time::Duration;

/// Puts sent in a round that must land before it is judged: four times the window, and at least
/// this many (so a window of 1 is judged over several round trips, not one noisy sample).
pub(crate) const MIN_ROUND_PUTS: u32 = 8;
/// Limited rounds the controller holds a window it settled on before it probes again.
pub(crate) const HOLD_ROUNDS: u32 = 8;
/// Round minimum latencies kept for `min_latency` (a windowed minimum, so a store that got
/// slower is seen as slower after this many rounds).
const MIN_LATENCY_ROUNDS: usize = 16;

/// What the controller is doing between rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Settled: after `left` more limited rounds, probe.
    Hold { left: u32 },
    /// Trying one more than `base`, whose rate was `rate`.
    Up { base: u32, rate: u64 },
    /// Trying less than `best`, the smallest window that held `rate` (the best rate seen
    /// since the descent began): a smaller window is kept while it loses at most a quarter
    /// of what a store whose rate grows linearly with the window would lose.
    Down { best: u32, rate: u64 },
}

/// What the controller needs back when a put it was told of lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    at: Duration,
    /// Puts in flight once it was sent (itself included).
    in_flight: u32,
    /// The round it was sent in: only puts sent in the round being measured count (the
    /// others went out under an earlier window).
    round: u64,
}

/// The round being measured.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    seq: u64,
    puts: u32,
    bytes: u64,
    latency_sum: Duration,
    latency_min: Option<Duration>,
    /// The sum over the round's puts of the puts in flight when each was sent (itself
    /// included): with `puts`, the mean concurrency.
    in_flight_sum: u64,
    /// Work waited for a slot during the round: the window, not the appends, set the pace.
    limited: bool,
}

/// The controller's estimates, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowEstimates {
    /// The window now.
    pub window: u32,
    /// Acknowledged bytes per second in the last round judged (0 before one was).
    pub rate: u64,
    /// Mean put latency (send to landed) in the last round judged.
    pub latency: Duration,
    /// The lowest put latency of the last rounds.
    pub min_latency: Duration,
    /// Rounds judged, and how many of them changed the window.
    pub rounds: u64,
    /// Window changes so far.
    pub changes: u64,
}

/// The window controller of one writer.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    cap: u32,
    adaptive: bool,
    window: u32,
    phase: Phase,
    round: Round,
    mins: [Duration; MIN_LATENCY_ROUNDS],
    mins_seen: usize,
    estimates: WindowEstimates,
}

impl Window {
    /// A controller that starts at `cap` (the configured `max_in_flight`, at most the log's
    /// fence window) and, when `adaptive`, moves within `1..=cap`; when not, stays at `cap`.
    pub(crate) fn new(cap: u32, adaptive: bool) -> Self {
        let cap = cap.max(1);
        Window {
            cap,
            adaptive,
            window: cap,
            // The first limited round measures the starting window; then it probes.
            phase: Phase::Hold { left: 1 },
            round: Round::default(),
            mins: [Duration::ZERO; MIN_LATENCY_ROUNDS],
            mins_seen: 0,
            estimates: WindowEstimates {
                window: cap,
                ..WindowEstimates::default()
            },
        }
    }

    /// Puts allowed in flight now.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// The controller's estimates.
    pub(crate) fn estimates(&self) -> WindowEstimates {
        self.estimates
    }

    /// Work (a sealed entry, or an open batch that is due) waited because every slot of the
    /// window was busy.
    pub(crate) fn blocked(&mut self) {
        self.round.limited = true;
    }

    /// An entry put was sent at `now`, leaving `in_flight` puts in flight (itself included);
    /// hand the answer back to `landed`.
    pub(crate) fn sent(&self, now: Duration, in_flight: u32) -> Sent {
        Sent {
            at: now,
            in_flight,
            round: self.round.seq,
        }
    }

    /// An entry put of `bytes` record bytes, `sent` as it says, landed at `now`.
    pub(crate) fn landed(&mut self, bytes: u64, sent: Sent, now: Duration) {
        let r = &mut self.round;
        if sent.round != r.seq {
            return; // sent under an earlier window
        }
        let in_flight = sent.in_flight;
        let latency = now.saturating_sub(sent.at);
        r.puts += 1;
        r.bytes += bytes;
        r.latency_sum += latency;
        r.latency_min = Some(r.latency_min.map_or(latency, |m| m.min(latency)));
        r.in_flight_sum += u64::from(in_flight);
        if r.puts >= (4 * self.window).max(MIN_ROUND_PUTS) {
            self.judge();
        }
    }

    /// Ends the round: records its estimates and, if the window set the pace,
    /// moves the window by the phase's rule.
    fn judge(&mut self) {
        let next = Round {
            seq: self.round.seq + 1,
            ..Round::default()
        };
        let round = core::mem::replace(&mut self.round, next);
        if round.latency_sum.is_zero() {
            return; // no time passed (an instant store): nothing to learn from
        }
        // Little's law: the rate is the mean concurrency times the bytes per put over the
        // mean latency, i.e. `in_flight_sum * bytes / (puts * latency_sum)`. Unlike bytes
        // over the round's elapsed time, it does not depend on where the round's edges fall
        // between landings.
        let rate = (u128::from(round.in_flight_sum) * u128::from(round.bytes) * 1_000_000_000
            / (u128::from(round.puts) * round.latency_sum.as_nanos()))
        .min(u128::from(u64::MAX)) as u64;
        self.mins[self.mins_seen % MIN_LATENCY_ROUNDS] = round.latency_min.unwrap_or_default();
        self.mins_seen += 1;
        let kept = self.mins_seen.min(MIN_LATENCY_ROUNDS);
        let e = &mut self.estimates;
        e.rate = rate;
        e.latency = round.latency_sum / round.puts.max(1);
        e.min_latency = self.mins[..kept].iter().copied().min().unwrap_or_default();
        e.rounds += 1;
        if !self.adaptive {
            return;
        }
        let before = self.window;
        if round.limited {
            self.step(rate);
        } else {
            // The appends, not the window, set the pace: the round says nothing about
            // what another window would deliver. Keep this one.
            self.phase = Phase::Hold { left: HOLD_ROUNDS };
        }
        if self.window != before {
            self.estimates.changes += 1;
        }
        self.estimates.window = self.window;
    }

    /// One limited round's rate moves the window.
    fn step(&mut self, rate: u64) {
        let w = self.window;
        self.phase = match self.phase {
            Phase::Hold { left } if left > 1 => Phase::Hold { left: left - 1 },
            Phase::Hold { .. } => self.probe(w, rate),
            Phase::Up {
                base,
                rate: base_rate,
            } => {
                if grew(base, base_rate, rate) {
                    // The extra slot paid: keep climbing.
                    if w < self.cap {
                        self.window = w + 1;
                        Phase::Up { base: w, rate }
                    } else {
                        Phase::Hold { left: HOLD_ROUNDS }
                    }
                } else if base > 1 {
                    // It did not: try below the base instead.
                    self.window = base - 1;
                    Phase::Down {
                        best: base,
                        rate: base_rate,
                    }
                } else {
                    self.window = base;
                    Phase::Hold { left: HOLD_ROUNDS }
                }
            }
            Phase::Down {
                best,
                rate: best_rate,
            } => {
                if held(best, best_rate, w, rate) {
                    // Fewer slots, (almost) the same rate: keep descending from here.
                    let best_rate = best_rate.max(rate);
                    if w > 1 {
                        self.window = w - 1;
                        Phase::Down {
                            best: w,
                            rate: best_rate,
                        }
                    } else {
                        Phase::Hold { left: HOLD_ROUNDS }
                    }
                } else {
                    // Too slow: back to the smallest window that held the rate.
                    self.window = best;
                    Phase::Hold { left: HOLD_ROUNDS }
                }
            }
        };
    }

    /// Leaves a settled window: one more slot if there is room, else one fewer.
    fn probe(&mut self, w: u32, rate: u64) -> Phase {
        if w < self.cap {
            self.window = w + 1;
            Phase::Up { base: w, rate }
        } else if w > 1 {
            self.window = w - 1;
            Phase::Down { best: w, rate }
        } else {
            Phase::Hold { left: HOLD_ROUNDS }
        }
    }
}

/// Whether `rate` at one slot more than `base` grew by at least half of what a store that
/// scales linearly would give (`base_rate / base`): `2 * base * (rate - base_rate) >= base_rate`.
fn grew(base: u32, base_rate: u64, rate: u64) -> bool {
    let gain = u128::from(rate.saturating_sub(base_rate));
    2 * u128::from(base) * gain >= u128::from(base_rate) && rate > base_rate
}

/// Whether `rate` at window `w` (below `best`) lost at most a quarter of what a linearly
/// scaling store would lose going from `best` to `w`: `4 * best * (best_rate - rate) <=
/// best_rate * (best - w)`. (Stricter than `grew`: between the two a window is left alone,
/// and a noisy store errs towards more slots, not fewer.)
fn held(best: u32, best_rate: u64, w: u32, rate: u64) -> bool {
    let loss = u128::from(best_rate.saturating_sub(rate));
    4 * u128::from(best) * loss <= u128::from(best_rate) * u128::from(best.saturating_sub(w))
}

#[cfg(test)]
mod tests;
