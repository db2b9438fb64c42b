//! The controller against scripted stores: a store is a number of lanes that each serve one
//! put at a time for `latency + bytes / lane bandwidth`; a put waits for the first free lane
//! (so past `lanes` puts in flight, latency grows and the rate does not). The writer side
//! always has work (a backlog), so every round is window-limited unless a test says not.

use super::*;
use alloc::vec::Vec;

#[derive(Clone, Copy)]
struct Store {
    lanes: usize,
    latency: Duration,
    /// Bytes per second one lane moves.
    lane_bandwidth: u64,
}

impl Store {
    fn service(&self, bytes: u64) -> Duration {
        self.latency + Duration::from_nanos(bytes * 1_000_000_000 / self.lane_bandwidth)
    }
}

/// Drives `w` against a store that `store_at(t)` describes at time `t`, with puts of `bytes`
/// each, for `puts` puts; returns the time and the window after each put landed.
fn drive_timed(
    w: &mut Window,
    puts: usize,
    bytes: u64,
    backlog: bool,
    mut store_at: impl FnMut(Duration) -> Store,
) -> Vec<(Duration, u32)> {
    let mut now = Duration::ZERO;
    let mut lanes: Vec<Duration> = Vec::new();
    // (done, what the controller said at the send) of the puts in flight.
    let mut in_flight: Vec<(Duration, Sent)> = Vec::new();
    let mut windows = Vec::new();
    let mut sent = 0;
    while windows.len() < puts {
        let store = store_at(now);
        lanes.resize(store.lanes, Duration::ZERO);
        while in_flight.len() < w.window() as usize && sent < puts {
            let lane = (0..lanes.len()).min_by_key(|&i| lanes[i]).unwrap();
            let done = now.max(lanes[lane]) + store.service(bytes);
            lanes[lane] = done;
            let ticket = w.sent(now, in_flight.len() as u32 + 1);
            in_flight.push((done, ticket));
            sent += 1;
        }
        if backlog && in_flight.len() >= w.window() as usize {
            w.blocked();
        }
        let next = (0..in_flight.len())
            .min_by_key(|&i| in_flight[i].0)
            .unwrap();
        let (done, ticket) = in_flight.swap_remove(next);
        now = done;
        w.landed(bytes, ticket, now);
        windows.push((now, w.window()));
    }
    windows
}

/// `drive_timed` without the times.
fn drive(
    w: &mut Window,
    puts: usize,
    bytes: u64,
    backlog: bool,
    store_at: impl FnMut(Duration) -> Store,
) -> Vec<u32> {
    drive_timed(w, puts, bytes, backlog, store_at)
        .into_iter()
        .map(|(_, w)| w)
        .collect()
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// The lowest and highest window over the last `tail` landings.
fn spread(windows: &[u32], tail: usize) -> (u32, u32) {
    let last = &windows[windows.len() - tail..];
    (*last.iter().min().unwrap(), *last.iter().max().unwrap())
}

/// The window held longest over the last `tail` landings.
fn mode(windows: &[u32], tail: usize) -> u32 {
    let last = &windows[windows.len() - tail..];
    let mut counts = [0usize; 65];
    for &w in last {
        counts[w as usize] += 1;
    }
    (0..65).max_by_key(|&w| counts[w]).unwrap() as u32
}

const LOCAL_DISK: Store = Store {
    lanes: 2,
    latency: us(100),
    lane_bandwidth: 1 << 30,
};

#[test]
fn on_a_fast_store_with_two_lanes_it_descends_to_two_and_stays_within_one_step() {
    let mut w = Window::new(16, true);
    let windows = drive(&mut w, 4000, 64 << 10, true, |_| LOCAL_DISK);
    assert_eq!(mode(&windows, 2000), 2, "{:?}", &windows[2000..2100]);
    assert_eq!(spread(&windows, 2000), (1, 3));
    let e = w.estimates();
    // Two lanes of 64 KiB in 100 us + 61 us: about 0.8 GB/s.
    assert!(e.rate > 600_000_000 && e.rate < 900_000_000, "{e:?}");
    assert!(e.min_latency >= us(100) && e.min_latency < us(200), "{e:?}");
}

#[test]
fn on_a_slow_store_that_scales_it_stays_near_the_cap() {
    let slow = Store {
        lanes: 64,
        latency: ms(20),
        lane_bandwidth: 100 << 20,
    };
    let mut w = Window::new(16, true);
    let windows = drive(&mut w, 3000, 1 << 20, true, |_| slow);
    let (low, high) = spread(&windows, 1500);
    assert!(low >= 15 && high == 16, "{low}..{high}");
}

#[test]
fn on_a_slow_store_with_eight_lanes_it_settles_on_eight() {
    let slow = Store {
        lanes: 8,
        latency: ms(20),
        lane_bandwidth: 100 << 20,
    };
    let mut w = Window::new(16, true);
    let windows = drive(&mut w, 4000, 256 << 10, true, |_| slow);
    assert_eq!(mode(&windows, 2000), 8);
    let (low, high) = spread(&windows, 2000);
    assert!(low >= 7 && high <= 9, "{low}..{high}");
}

#[test]
fn it_follows_a_store_whose_parallelism_steps_up_and_back_down() {
    // 3 lanes, then 10 from 20 s, then 3 again from 40 s.
    let lanes_at = |t: Duration| match t.as_secs() {
        0..=19 => 3,
        20..=39 => 10,
        _ => 3,
    };
    let mut w = Window::new(16, true);
    let run = drive_timed(&mut w, 56_000, 64 << 10, true, |t| Store {
        lanes: lanes_at(t),
        latency: ms(5),
        lane_bandwidth: 200 << 20,
    });
    assert!(
        run.last().unwrap().0 > Duration::from_secs(50),
        "the run spans the three phases"
    );
    // The second half of each phase: settled.
    let settled = |from: u64, to: u64| -> Vec<u32> {
        let mid = Duration::from_secs(from + (to - from) / 2);
        let end = Duration::from_secs(to);
        run.iter()
            .filter(|(t, _)| *t >= mid && *t < end)
            .map(|(_, w)| *w)
            .collect()
    };
    for (from, to, lanes) in [(0, 20, 3), (20, 40, 10), (40, 50, 3)] {
        let windows = settled(from, to);
        assert_eq!(mode(&windows, windows.len()), lanes, "{from}..{to} s");
        let (low, high) = spread(&windows, windows.len());
        assert!(
            low + 1 >= lanes && high <= lanes + 1,
            "{from}..{to} s: {low}..{high}"
        );
    }
}

#[test]
fn a_latency_step_without_a_change_of_parallelism_leaves_the_window_where_it_was() {
    // 5 ms, then 50 ms from 10 s, then 5 ms from 40 s: four lanes throughout.
    let store = |t: Duration| Store {
        lanes: 4,
        latency: if (10..40).contains(&t.as_secs()) {
            ms(50)
        } else {
            ms(5)
        },
        lane_bandwidth: 200 << 20,
    };
    let mut w = Window::new(16, true);
    let windows = drive(&mut w, 20_000, 64 << 10, true, store);
    assert_eq!(mode(&windows, 5000), 4);
    let (low, high) = spread(&windows, 5000);
    assert!(low >= 3 && high <= 5, "{low}..{high}");
}

#[test]
fn rounds_the_appends_set_the_pace_of_leave_the_window_alone() {
    let mut w = Window::new(16, true);
    let windows = drive(&mut w, 2000, 64 << 10, false, |_| LOCAL_DISK);
    assert!(windows.iter().all(|&x| x == 16));
    assert!(
        w.estimates().rounds > 20,
        "rounds were judged: {:?}",
        w.estimates()
    );
}

#[test]
fn a_fixed_window_never_moves_but_still_reports_its_estimates() {
    let mut w = Window::new(8, false);
    let windows = drive(&mut w, 2000, 64 << 10, true, |_| LOCAL_DISK);
    assert!(windows.iter().all(|&x| x == 8));
    let e = w.estimates();
    assert_eq!((e.window, e.changes), (8, 0));
    // Eight in flight on two lanes of 161 us each: every put waits for three before it.
    assert!(e.latency > us(600) && e.latency < us(700), "{e:?}");
    assert!(
        e.min_latency >= us(161) && e.min_latency <= e.latency,
        "{e:?}"
    );
    assert!(e.rate > 600_000_000 && e.rate < 900_000_000, "{e:?}");
}

#[test]
fn the_same_landings_give_the_same_windows() {
    let run = || {
        let mut w = Window::new(16, true);
        drive(&mut w, 3000, 64 << 10, true, |t| Store {
            lanes: 1 + (t.as_millis() as usize / 50) % 7,
            ..LOCAL_DISK
        })
    };
    assert_eq!(run(), run());
}

#[test]
fn a_window_of_one_on_a_one_lane_store_stays_at_one() {
    let one = Store {
        lanes: 1,
        ..LOCAL_DISK
    };
    let mut w = Window::new(4, true);
    let windows = drive(&mut w, 2000, 4096, true, |_| one);
    let (low, high) = spread(&windows, 1000);
    assert!(low == 1 && high <= 2, "{low}..{high}");
    assert_eq!(mode(&windows, 1000), 1);
}

#[test]
fn the_rules_grow_and_hold_by_half_of_linear_scaling() {
    // From 4 slots at 400, a fifth must add at least 50 (half of 100).
    assert!(grew(4, 400, 450));
    assert!(!grew(4, 400, 449));
    assert!(!grew(1, 0, 0));
    // From 4 slots at 400 down to 3, losing up to 25 (a quarter of 100) is kept.
    assert!(held(4, 400, 3, 375));
    assert!(!held(4, 400, 3, 374));
    assert!(held(4, 400, 3, 500));
}
