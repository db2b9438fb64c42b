//! The callers of a [`tidewal_core::Session`]: every command carries a recording [`Reply`],
//! and a [`Ledger`] per writer client checks what the session answers against what it was
//! asked (exactly once each, appends in order, flushes after the appends before them, nothing
//! but errors once the session has stopped).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidewal_core::{Ack, AppendId, Error, FatalError, Reply};

/// What a reply was answered with (`Dropped`: the session let go of it unanswered).
#[derive(Debug)]
pub enum Outcome {
    Ready(Result<u64, Error>),
    Append(Result<Ack, Error>),
    Flush(Result<(), Error>),
    Memtable(Result<Option<u64>, Error>),
    Close(Result<(), Error>),
    Dropped,
}

impl Outcome {
    fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Ready(Err(e))
            | Outcome::Append(Err(e))
            | Outcome::Flush(Err(e))
            | Outcome::Memtable(Err(e))
            | Outcome::Close(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// One answered (or dropped) reply.
pub struct Answer {
    pub client: usize,
    pub ticket: u64,
    pub outcome: Outcome,
}

/// Where every reply of the run records its answer, in the order they come; the world drains
/// it after each call into a session.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Answer>>>);

impl Log {
    pub fn take(&self) -> Vec<Answer> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, a: Answer) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(a);
    }

    /// A reply for `ticket` of `client`: records its answer, or `Dropped` if it never gets one.
    pub fn reply<T: 'static>(
        &self,
        client: usize,
        ticket: u64,
        wrap: fn(Result<T, Error>) -> Outcome,
    ) -> Reply<T> {
        let mut tracker = Tracker {
            log: self.clone(),
            client,
            ticket,
            answered: false,
        };
        Box::new(move |r| {
            tracker.answered = true;
            tracker.log.push(Answer {
                client,
                ticket,
                outcome: wrap(r),
            });
        })
    }
}

/// Lives inside a reply: records `Dropped` if the reply is dropped without being called.
struct Tracker {
    log: Log,
    client: usize,
    ticket: u64,
    answered: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.answered {
            self.log.push(Answer {
                client: self.client,
                ticket: self.ticket,
                outcome: Outcome::Dropped,
            });
        }
    }
}

/// A command waiting for its reply.
#[derive(Debug)]
pub enum Cmd {
    Ready,
    Append {
        /// Payload ids of its records (zero-row ones included).
        ids: Vec<u64>,
        /// Those of records with rows (what the log may hold).
        kept: Vec<u64>,
        issued: Duration,
        /// The writer's id for it, once the writer accepted it.
        accepted: Option<AppendId>,
    },
    Flush,
    Memtable,
    Close,
}

/// What an answer tells the model.
pub enum Fact {
    Nothing,
    /// The writer owns the log with this epoch.
    Ready(u64),
    /// These payloads are durable at this position.
    Acked(Vec<u64>, u64),
    /// These payloads were never given to the writer: they must never land.
    Never(Vec<u64>, String),
    /// This generation was committed.
    Generation(u64),
}

/// One session's callers: what was asked, what is still owed, and the rules of the answers.
#[derive(Default)]
pub struct Ledger {
    next_ticket: u64,
    pub pending: BTreeMap<u64, Cmd>,
    /// Appends neither accepted by the writer nor answered, in the order they were issued.
    waiting: VecDeque<u64>,
    /// Appends the writer accepted so far (its `stats().writer.appends`).
    accepted: u64,
    last_ack: Option<AppendId>,
    /// The ticket of the first `close`: only what was issued after it may be refused as
    /// `Closed` (what came before, close drains).
    close_issued: Option<u64>,
    /// The session stopped: closed, or failed with this error (every later answer is it).
    pub terminal: Option<Error>,
    pub fenced_told: bool,
    /// The world dropped the session (a crash): its replies may go unanswered.
    pub crashed: bool,
    pub issued: u64,
    pub answered: u64,
    pub dropped: u64,
    pub timed_out: u64,
}

/// The errors a writer may stop with in the simulation (anything else is a bug).
fn allowed_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Fenced { .. } | Error::Store { .. } | Error::Failed(FatalError::Contended)
    )
}

impl Ledger {
    pub fn issue(&mut self, cmd: Cmd) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.issued += 1;
        match &cmd {
            Cmd::Append { .. } => self.waiting.push_back(ticket),
            Cmd::Close => {
                self.close_issued.get_or_insert(ticket);
            }
            _ => {}
        }
        self.pending.insert(ticket, cmd);
        ticket
    }

    /// The writer has accepted `total` appends in all: the ones it took since the last look
    /// are the oldest waiting (the session keeps them in order), none past its timeout.
    pub fn accepted(&mut self, total: u64, now: Duration, timeout: Duration) -> Result<(), String> {
        while self.accepted < total {
            let Some(ticket) = self.waiting.pop_front() else {
                return Err(format!(
                    "the writer took {total} appends, only {} were waiting to be taken",
                    self.accepted
                ));
            };
            let id = AppendId(self.accepted);
            self.accepted += 1;
            if let Some(Cmd::Append {
                issued, accepted, ..
            }) = self.pending.get_mut(&ticket)
            {
                if now - *issued > timeout {
                    return Err(format!(
                        "append t{ticket} reached the writer {:?} after it was issued, past the backpressure timeout {timeout:?}",
                        now - *issued
                    ));
                }
                *accepted = Some(id);
            }
        }
        Ok(())
    }

    /// An append answered (not yet checked) was never taken by the writer: after a pause,
    /// appends past their timeout fail in the same input that makes room for later ones.
    pub fn not_taken(&mut self, ticket: u64) {
        self.waiting.retain(|&t| t != ticket);
    }

    /// Whether appends wait for the writer to take them.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Checks one answer against what was asked and what came before.
    pub fn answer(
        &mut self,
        ticket: u64,
        outcome: Outcome,
        now: Duration,
        timeout: Duration,
    ) -> Result<Fact, String> {
        let Some(cmd) = self.pending.remove(&ticket) else {
            return Err(format!("reply t{ticket} answered twice or never asked"));
        };
        self.waiting.retain(|&t| t != ticket);
        if let Outcome::Dropped = outcome {
            if self.crashed {
                self.dropped += 1;
                return Ok(Fact::Nothing);
            }
            return Err(format!("reply t{ticket} ({cmd:?}) dropped unanswered"));
        }
        self.answered += 1;
        if let Some(t) = &self.terminal {
            return match outcome.error() {
                Some(e) if e == t => Ok(Fact::Nothing),
                _ => Err(format!(
                    "t{ticket} ({cmd:?}) answered {outcome:?} after the session stopped with {t:?}"
                )),
            };
        }
        if let Some(e) = outcome.error() {
            if allowed_fatal(e) {
                self.terminal = Some(e.clone());
                return Ok(Fact::Nothing);
            }
            if !matches!(
                e,
                Error::BackpressureTimeout { .. } | Error::Invalid(_) | Error::Closed
            ) {
                return Err(format!("t{ticket} ({cmd:?}): the writer failed: {e}"));
            }
            let closed_before = self.close_issued.is_some_and(|c| c < ticket);
            let is_close = matches!(cmd, Cmd::Close);
            if matches!(e, Error::Closed) && !closed_before && !is_close {
                return Err(format!(
                    "t{ticket} ({cmd:?}) answered Closed, but no close was issued before it"
                ));
            }
        }
        let earlier_append = self
            .pending
            .range(..ticket)
            .find(|(_, c)| matches!(c, Cmd::Append { .. }))
            .map(|(&t, _)| t);
        match (cmd, outcome) {
            (Cmd::Ready, Outcome::Ready(Ok(epoch))) => Ok(Fact::Ready(epoch)),
            (Cmd::Append { kept, accepted, .. }, Outcome::Append(Ok(ack))) => {
                if let Some(t) = earlier_append {
                    return Err(format!(
                        "append t{ticket} acknowledged before t{t}, issued before it"
                    ));
                }
                if accepted != Some(ack.append) || self.last_ack >= Some(ack.append) {
                    return Err(format!(
                        "append t{ticket} acknowledged as {:?}, accepted as {accepted:?}, after {:?}",
                        ack.append, self.last_ack
                    ));
                }
                self.last_ack = Some(ack.append);
                Ok(Fact::Acked(kept, ack.position))
            }
            (
                Cmd::Append {
                    ids,
                    kept,
                    issued,
                    accepted,
                },
                Outcome::Append(Err(e)),
            ) => {
                if let Some(id) = accepted {
                    return Err(format!(
                        "append t{ticket}, accepted as {id:?}, answered {e:?}"
                    ));
                }
                match e {
                    Error::BackpressureTimeout { waited }
                        if waited >= timeout && issued + waited == now =>
                    {
                        self.timed_out += 1;
                        Ok(Fact::Never(ids, format!("it timed out (t{ticket})")))
                    }
                    Error::Invalid(_) if kept.is_empty() => {
                        Ok(Fact::Never(ids, format!("it had no rows (t{ticket})")))
                    }
                    Error::Closed => Ok(Fact::Never(ids, format!("it was refused (t{ticket})"))),
                    e => Err(format!(
                        "append t{ticket} issued at {issued:?} answered {e:?} at {now:?}"
                    )),
                }
            }
            (Cmd::Flush, Outcome::Flush(Ok(()))) => match earlier_append {
                Some(t) => Err(format!(
                    "flush t{ticket} answered before append t{t}, issued before it"
                )),
                None => Ok(Fact::Nothing),
            },
            (Cmd::Flush, Outcome::Flush(Err(Error::Closed))) => Ok(Fact::Nothing),
            (Cmd::Memtable, Outcome::Memtable(Ok(Some(g)))) => Ok(Fact::Generation(g)),
            (Cmd::Memtable, Outcome::Memtable(Ok(None))) => Ok(Fact::Nothing),
            // Not ready yet, WAL-only, or closing.
            (Cmd::Memtable, Outcome::Memtable(Err(Error::Invalid(_) | Error::Closed))) => {
                Ok(Fact::Nothing)
            }
            (Cmd::Close, Outcome::Close(Ok(()))) => {
                if let Some((t, c)) = self.pending.range(..ticket).next() {
                    return Err(format!(
                        "close t{ticket} answered before t{t} ({c:?}), issued before it"
                    ));
                }
                self.terminal = Some(Error::Closed);
                Ok(Fact::Nothing)
            }
            (Cmd::Close, Outcome::Close(Err(Error::Closed))) => Ok(Fact::Nothing),
            (cmd, outcome) => Err(format!("t{ticket} ({cmd:?}) answered {outcome:?}")),
        }
    }

    /// After a batch of answers: a session that stopped owes nobody anything.
    pub fn settled(&self) -> Result<(), String> {
        match (&self.terminal, self.pending.keys().next()) {
            (Some(t), Some(ticket)) if !self.crashed => Err(format!(
                "the session stopped with {t:?} and left t{ticket} ({:?}) unanswered",
                self.pending[ticket]
            )),
            _ => Ok(()),
        }
    }

    /// The session told its host it was fenced.
    pub fn fenced(&mut self, e: Error) -> Result<(), String> {
        if self.fenced_told || !matches!(e, Error::Fenced { .. }) {
            return Err(format!("told Fenced again or with {e:?}"));
        }
        self.fenced_told = true;
        match &self.terminal {
            Some(t) if *t != e => Err(format!("told {e:?} after stopping with {t:?}")),
            _ => {
                self.terminal = Some(e);
                self.settled()
            }
        }
    }

    /// After a drain: a session stopped by a newer writer has told its host so.
    pub fn told(&self) -> Result<(), String> {
        match &self.terminal {
            Some(e @ Error::Fenced { .. }) if !self.fenced_told && !self.crashed => {
                Err(format!("stopped with {e:?} without telling its host"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the session still owes an answer it can give (it has not stopped).
    pub fn owes(&self) -> bool {
        self.terminal.is_none() && !self.pending.is_empty()
    }
}
