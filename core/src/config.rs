//! Writer and reader settings.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use crate::error::ConfigError;

/// When appends are sealed into one WAL entry (whichever comes first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCommit {
    /// Seal once the pending records reach this many bytes.
    pub max_bytes: usize,
    /// Seal once this many records are pending.
    pub max_records: usize,
    /// Seal this long after the first pending record arrived (zero: at once). While every
    /// in-flight slot is busy, a due batch waits for a free one and keeps taking appends (up
    /// to the thresholds above), so appends queued behind a full window share an entry.
    pub interval: Duration,
}

/// Retry with exponential backoff and jitter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts before a request is declared failed.
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(20),
            max: Duration::from_secs(2),
            attempts: 12,
        }
    }
}

/// How a writer behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// Object prefix of the log.
    pub prefix: String,
    /// Keep no memtable and write no generations; the cursor moves by `truncate`.
    pub wal_only: bool,
    /// Skip window after a fence; fixed when the log is created (`max_in_flight` must not
    /// exceed the log's window).
    pub fence_window: u32,
    /// WAL entry puts in flight at once, at most: the in-flight window's ceiling.
    pub max_in_flight: u32,
    /// Let the writer choose its in-flight window between 1 and `max_in_flight` from what
    /// the store does (PROTOCOL.md §4 "The in-flight window"); `false` keeps it at
    /// `max_in_flight`. On by default.
    pub adaptive_window: bool,
    /// Group commit thresholds.
    pub group_commit: GroupCommit,
    /// Largest single record.
    pub max_entry_bytes: usize,
    /// Freeze the memtable into a generation past this many bytes.
    pub memtable_bytes: usize,
    /// Budget of bytes not yet in a committed generation (or, WAL-only, not yet durable).
    pub unflushed_budget: usize,
    /// WAL entries read ahead during replay (at 1 MiB entries and 20 ms per GET, 16 ahead
    /// caps replay near 800 MB/s, 64 ahead near 3 GB/s; the cost is memory for that many
    /// entries and as many GETs past the end of the log).
    pub read_ahead: u32,
    /// Manifest versions kept by GC by count (at least 1): the newest this many.
    pub keep_manifests: u32,
    /// Manifest versions committed more recently than this are kept too, whatever their
    /// count (a reader as of a version, `tidewal history`): GC collects a version only when
    /// both say so. Needs a wall clock (`unix_ms_at_origin`); without one, by count only.
    pub keep_manifests_for: Duration,
    /// Open attempts when other writers keep claiming the log.
    pub open_attempts: u32,
    /// Store retries.
    pub retry: RetryPolicy,
    /// The wall clock (unix ms) at the host's clock origin (`now` = 0): an entry sealed at
    /// `now` records the time `unix_ms_at_origin + now` (never below an earlier entry's of
    /// the log). Hosts pass the system time when they create the writer; `None` records no
    /// time (entries then read as time unknown).
    pub unix_ms_at_origin: Option<u64>,
    /// Merging small generations in the background of flushes (PROTOCOL.md §4
    /// "Compaction"); `None` (or `enabled: false`) never compacts. On by default. Memory: a
    /// compaction holds its inputs and the merged file, at most twice `target_bytes`.
    pub compaction: Option<crate::compaction::CompactionConfig>,
    /// The writer lease `L` written into a log this writer creates or is the first lease
    /// writer of (PROTOCOL.md §4 "The writer lease"); a log that has one keeps its own. A
    /// writer acknowledges only within `L` of its newest clean ownership check, and a
    /// collector deletes fences only once its claim is `L * (1 + rho) + gc_margin` old.
    pub lease: Duration,
    /// What a collector waits past `L * (1 + rho)` before it deletes fences: a cushion for
    /// clock granularity (PROTOCOL.md §4 "Collecting fences").
    pub gc_margin: Duration,
    /// Dropping old generations on its own, after commits (PROTOCOL.md §4 "Automatic
    /// retention"); `None` (the default) drops only when asked. Refused for a WAL-only log.
    pub retention: Option<crate::policy::RetentionPolicy>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            prefix: String::new(),
            wal_only: false,
            fence_window: 64,
            max_in_flight: 16,
            adaptive_window: true,
            group_commit: GroupCommit {
                max_bytes: 1 << 20,
                max_records: 4096,
                interval: Duration::from_millis(5),
            },
            max_entry_bytes: 32 << 20,
            memtable_bytes: 64 << 20,
            unflushed_budget: 512 << 20,
            read_ahead: 64,
            keep_manifests: 8,
            keep_manifests_for: Duration::from_secs(3600),
            open_attempts: 8,
            retry: RetryPolicy::default(),
            unix_ms_at_origin: None,
            compaction: Some(crate::compaction::CompactionConfig::default()),
            lease: Duration::from_secs(30),
            gc_margin: Duration::from_secs(1),
            retention: None,
        }
    }
}

impl WriterConfig {
    /// Checks the settings against each other: the first one out of range is named, with
    /// its value and the range allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max_window = u64::from(crate::manifest::MAX_FENCE_WINDOW);
        let window = u64::from(self.fence_window);
        let checks: [(&str, u64, u64, u64); 12] = [
            ("fence_window", window, 1, max_window),
            (
                "max_in_flight (at most fence_window)",
                self.max_in_flight.into(),
                1,
                window,
            ),
            (
                "group_commit.max_bytes",
                self.group_commit.max_bytes as u64,
                1,
                u64::MAX,
            ),
            (
                "group_commit.max_records",
                self.group_commit.max_records as u64,
                1,
                u64::MAX,
            ),
            ("max_entry_bytes", self.max_entry_bytes as u64, 1, u64::MAX),
            ("memtable_bytes", self.memtable_bytes as u64, 1, u64::MAX),
            (
                "unflushed_budget",
                self.unflushed_budget as u64,
                1,
                u64::MAX,
            ),
            ("read_ahead", self.read_ahead.into(), 1, u64::MAX),
            ("keep_manifests", self.keep_manifests.into(), 1, u64::MAX),
            ("open_attempts", self.open_attempts.into(), 1, u64::MAX),
            ("retry.attempts", self.retry.attempts.into(), 1, u64::MAX),
            (
                "lease (ms)",
                self.lease.as_millis().min(u128::from(u64::MAX)) as u64,
                3,
                u32::MAX.into(),
            ),
        ];
        for (name, value, lo, hi) in checks {
            if !(lo..=hi).contains(&value) {
                let range = match hi {
                    u64::MAX => format!("at least {lo}"),
                    _ => format!("{lo} to {hi}"),
                };
                return Err(ConfigError(format!(
                    "writer.{name} is {value}: allowed {range}"
                )));
            }
        }
        if let Some(c) = &self.compaction {
            c.validate()?;
        }
        if let Some(r) = &self.retention {
            if self.wal_only {
                return Err(ConfigError(
                    "writer.retention is set on a WAL-only log: it takes no retention policy, truncate it"
                        .into(),
                ));
            }
            r.validate()?;
        }
        Ok(())
    }
}

/// Where a reader starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// The first entry the log still holds.
    #[default]
    Beginning,
    /// The first entry at or after this position; below what the log still holds is a
    /// [`crate::FatalError::Truncated`] error.
    Position(u64),
    /// The first entry whose time (unix ms, `tidewal.time`) is at or after this one, and
    /// every entry after it. An entry of unknown time (an older writer's) is reported once
    /// reached, with all after it: nothing says it is earlier (PROTOCOL.md §5).
    Time(u64),
}

/// How a reader behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Object prefix of the log.
    pub prefix: String,
    /// Where to start.
    pub from: Start,
    /// Stop before this position: entries at or past it are not reported, and the reader
    /// finishes (following or not) once it meets one, or the log's end, at or past it.
    pub until: Option<u64>,
    /// Read exactly this manifest version (PROTOCOL.md §5 "As of a version"): its
    /// generations, below its cursor, and no WAL (the reader then finishes with `CaughtUp`
    /// at the cursor, or `until` if lower, and never follows). A version not kept any more is
    /// [`crate::FatalError::VersionNotKept`], one never committed
    /// [`crate::FatalError::NoSuchVersion`], a generation of it collected since
    /// [`crate::FatalError::GenerationCollected`].
    pub as_of_version: Option<u64>,
    /// Stop at the first entry whose time (unix ms) is known and past this one (PROTOCOL.md
    /// §5 "Until a time"): entries of a time at or before it, and entries of unknown time
    /// before that first later one, are reported; the reader then finishes with `CaughtUp`
    /// at that entry's position, following or not.
    pub until_time: Option<u64>,
    /// Keep polling for new entries after catching up.
    pub follow: bool,
    /// Delay between polls when following.
    pub poll_interval: Duration,
    /// WAL entries read ahead.
    pub read_ahead: u32,
    /// Bytes read ahead (PROTOCOL.md §5 "Flow control"): once the records reported and not
    /// yet released with [`crate::Reader::release`], plus the slots and the generation it
    /// fetches, reach this many bytes, the reader sends no more GETs until the host releases
    /// some (one GET is always allowed when it holds nothing; 0 is taken as 1).
    pub read_ahead_bytes: u64,
    /// Store retries.
    pub retry: RetryPolicy,
}

impl ReaderConfig {
    /// The default `read_ahead_bytes`: 16 MiB.
    pub const DEFAULT_READ_AHEAD_BYTES: u64 = 16 << 20;
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            prefix: String::new(),
            from: Start::Beginning,
            until: None,
            as_of_version: None,
            until_time: None,
            follow: false,
            poll_interval: Duration::from_millis(100),
            read_ahead: 64,
            read_ahead_bytes: Self::DEFAULT_READ_AHEAD_BYTES,
            retry: RetryPolicy::default(),
        }
    }
}
