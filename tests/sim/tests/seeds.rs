//! The simulation as a test: a batch of seeds must hold every invariant, and a run must be a
//! pure function of its seed.

#[test]
fn seeds_hold_every_invariant() {
    for seed in 0..300 {
        let out = tidewal_sim::run(seed, false);
        assert!(out.violation.is_none(), "seed {seed}: {:?}", out.violation);
        assert!(
            out.steps > 100,
            "seed {seed} did too little: {} steps",
            out.steps
        );
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [1, 17, 4242] {
        let a = tidewal_sim::run(seed, false);
        let b = tidewal_sim::run(seed, true);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!((a.steps, a.acked), (b.steps, b.acked));
        assert!(!b.trace.is_empty());
    }
    assert_ne!(
        tidewal_sim::run(1, false).trace_hash,
        tidewal_sim::run(2, false).trace_hash
    );
}

#[test]
fn runs_acknowledge_appends() {
    let acked: u64 = (0..50).map(|s| tidewal_sim::run(s, false).acked).sum();
    assert!(acked > 1000, "only {acked} acked appends in 50 seeds");
}

#[test]
fn sessions_answer_replies_and_time_appends_out() {
    // Timeouts cluster in the seeds whose config is tight: 200 seeds, not 100, so that a
    // change to the draws does not leave the count at the mercy of a few seeds.
    let runs: Vec<_> = (0..200).map(|s| tidewal_sim::run(s, false)).collect();
    let replies: u64 = runs.iter().map(|o| o.replies).sum();
    let timed_out: u64 = runs.iter().map(|o| o.timed_out).sum();
    assert!(
        replies > 4000,
        "only {replies} session replies in 200 seeds"
    );
    assert!(
        timed_out > 10,
        "only {timed_out} backpressure timeouts in 200 seeds"
    );
}

#[test]
fn consumers_commit_resume_and_fence_each_other() {
    let runs: Vec<_> = (0..200).map(|s| tidewal_sim::run(s, false)).collect();
    let commits: u64 = runs.iter().map(|o| o.consumer_commits).sum();
    let fenced: u64 = runs.iter().map(|o| o.consumers_fenced).sum();
    let resumes: u64 = runs.iter().map(|o| o.consumer_resumes).sum();
    assert!(
        commits > 1000,
        "only {commits} consumer commits in 200 seeds"
    );
    assert!(fenced > 5, "only {fenced} fenced consumers in 200 seeds");
    assert!(resumes > 100, "only {resumes} resumes past 0 in 200 seeds");
}

#[test]
fn restorers_commit_restores_of_every_kind() {
    let mut kinds = [0u64; 3];
    for seed in 0..300 {
        let out = tidewal_sim::run(seed, false);
        for (k, n) in kinds.iter_mut().zip(out.restore_kinds) {
            *k += n;
        }
    }
    assert!(
        kinds.iter().all(|&n| n > 0),
        "restores committed to a position, a time, a version: {kinds:?}"
    );
}
