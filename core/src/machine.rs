//! The one contract every machine of this crate keeps ([`crate::Writer`], [`crate::Reader`],
//! [`crate::Session`]), so that a host needs one drive loop for all of them.

use core::time::Duration;

use crate::io::{Request, RequestId, Response};

/// What a machine wants next from its host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output<E> {
    /// Execute this request and answer it with [`Machine::handle_response`].
    Request(Request),
    /// Something happened that the host hands on to its caller.
    Event(E),
    /// Nothing more for now: call [`Machine::handle_timeout`] at this time (on the clock the
    /// machine is fed), or sooner if a response or a command comes. `None`: only a response
    /// or a command can move it.
    Wait(Option<Duration>),
    /// Finished: the machine will never output anything again, whatever it is fed. The host
    /// may drop it; answers to requests still out are ignored.
    Done,
}

/// A sans-I/O machine: inputs are responses, time and commands (methods of the machine);
/// outputs are requests, events and when to wake.
///
/// # The contract
///
/// - **Drain after every input.** After each `handle_response`, `handle_timeout` or command,
///   call [`Machine::poll_output`] until it returns [`Output::Wait`] or [`Output::Done`]. What
///   it returns is valid only until the next input: a `Wait` is replaced by the next one.
/// - **Every request is answered exactly once**, with the response of its kind, in any order
///   and at any later time. A host that cannot tell what happened (timeout, reset, a task that
///   died) answers with an error of kind [`crate::StoreErrorKind::Unknown`]: the machine reads
///   back, it never guesses. Answers to unknown or already answered ids are ignored.
/// - **Timeouts may be early or repeated.** `handle_timeout` fires what is due at `now` and
///   nothing else, so a timer that fires too soon, twice, or after a newer `Wait` is harmless.
/// - **`now` never needs to be exact**, only non-decreasing per machine; a machine keeps the
///   largest `now` it was given. One rule is strict: the `now` given with a response is read
///   *after* the response arrived (never a time taken before the request was answered). The
///   writer lease rests on it (PROTOCOL.md §4 "The writer lease"): an answer that came after a
///   collector's delete must be handled with a `now` past it. The clock must keep counting
///   while the process is paused, and run at most `1 + rho` times faster than another host's.
/// - **Refused commands may still have queued output.** A command that returns an error at once
///   (e.g. an append refused for backpressure) may have changed state; drain anyway.
pub trait Machine {
    /// What the machine reports to its caller.
    type Event;

    /// Feeds the outcome of a request this machine emitted.
    fn handle_response(&mut self, id: RequestId, response: Response, now: Duration);

    /// Time has passed: fires what is due at `now`.
    fn handle_timeout(&mut self, now: Duration);

    /// The next output: requests first, then events, then `Wait` (or `Done`).
    fn poll_output(&mut self) -> Output<Self::Event>;
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
