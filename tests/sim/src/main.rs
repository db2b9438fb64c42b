//! `tidewal-sim --seeds N [--start S] | --trace SEED | --check-determinism N`: runs seeds, prints a summary line, and
//! on a violation the seed and the tail of its trace.

use std::process::ExitCode;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(seed) = arg(&args, "--trace") {
        let out = tidewal_sim::run(seed, true);
        for line in &out.trace {
            println!("{line}");
        }
        println!(
            "seed {seed}: {} steps, {} acked, {} replies, {} timed out, violation: {:?}",
            out.steps, out.acked, out.replies, out.timed_out, out.violation
        );
        return if out.violation.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if let Some(n) = arg(&args, "--check-determinism") {
        for seed in 0..n {
            let (a, b) = (tidewal_sim::run(seed, false), tidewal_sim::run(seed, false));
            if a.trace_hash != b.trace_hash {
                eprintln!("seed {seed} is not deterministic");
                return ExitCode::FAILURE;
            }
        }
        println!("{n} seeds ran twice with identical traces");
        return ExitCode::SUCCESS;
    }
    let seeds = arg(&args, "--seeds").unwrap_or(100);
    let start = arg(&args, "--start").unwrap_or(0);
    let started = Instant::now();
    let (mut steps, mut acked, mut violations) = (0u64, 0u64, 0u64);
    let (mut replies, mut timed_out, mut ran, mut ranged) = (0u64, 0u64, 0u64, 0u64);
    let (mut commits, mut fenced, mut resumes) = (0u64, 0u64, 0u64);
    let (mut shortcuts, mut fallbacks) = (0u64, 0u64);
    let (mut searches, mut search_fallbacks) = (0u64, 0u64);
    let (mut as_of, mut as_of_collected, mut until_time) = (0u64, 0u64, 0u64);
    let (mut compactions, mut gone) = (0u64, 0u64);
    let (mut fences, mut intents, mut pauses, mut held) = (0u64, 0u64, 0u64, 0u64);
    let (mut drops, mut drops_held, mut forced, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let (mut refused_by_writer, mut grace_checked) = (0u64, 0u64);
    let mut auto = 0u64;
    let (mut restores, mut restored, mut restores_refused) = (0u64, 0u64, 0u64);
    let mut kinds = [0u64; 3];
    for seed in start..start + seeds {
        ran += 1;
        let out = tidewal_sim::run(seed, false);
        steps += out.steps;
        acked += out.acked;
        replies += out.replies;
        timed_out += out.timed_out;
        commits += out.consumer_commits;
        fenced += out.consumers_fenced;
        resumes += out.consumer_resumes;
        ranged += out.range_gets;
        shortcuts += out.shortcut_starts;
        fallbacks += out.shortcut_fallbacks;
        searches += out.time_searches;
        search_fallbacks += out.time_fallbacks;
        as_of += out.as_of_reads;
        as_of_collected += out.as_of_collected;
        until_time += out.until_time_stops;
        compactions += out.compactions;
        gone += out.generations_gone;
        fences += out.fences_collected;
        intents += out.intents_collected;
        pauses += out.pauses;
        held += out.acks_held;
        drops += out.drops_asked;
        drops_held += out.drops_held_back;
        refused_by_writer += out.drops_refused_by_writer;
        grace_checked += out.grace_checked;
        forced += out.drops_forced;
        dropped += out.drops_committed;
        auto += out.auto_drops;
        restores += out.restores_asked;
        restored += out.restores_committed;
        restores_refused += out.restores_refused;
        for (k, n) in kinds.iter_mut().zip(out.restore_kinds) {
            *k += n;
        }
        if let Some(v) = out.violation {
            violations += 1;
            let traced = tidewal_sim::run(seed, true);
            let tail = traced.trace.len().saturating_sub(60);
            for line in &traced.trace[tail..] {
                eprintln!("  {line}");
            }
            eprintln!("VIOLATION seed {seed}: {v}");
            eprintln!("reproduce: cargo run --release -p tidewal-sim -- --trace {seed}");
            if violations >= 5 {
                break;
            }
        }
    }
    println!(
        "{ran} seeds, {violations} violations, {steps} steps, {acked} acked appends, {replies} session replies, {timed_out} backpressure timeouts, {commits} consumer commits, {fenced} consumers fenced, {resumes} resumes, {ranged} ranged gets, {shortcuts} shortcut starts, {fallbacks} fallbacks, {searches} time searches, {search_fallbacks} time fallbacks, {as_of} reads as of a version, {as_of_collected} versions collected under them, {until_time} stops at a time, {compactions} compactions, {gone} generation gone, manifest re-read, {pauses} writer pauses, {held} acks held for the lease, {fences} fences and {intents} intents collected, {drops} drops asked ({drops_held} held back by a consumer, {refused_by_writer} refused by the writer's own check, {forced} forced, {dropped} committed), {auto} automatic drops, {grace_checked} retired files deleted after their grace, {restores} restores asked ({restored} committed: {} to a position, {} to a time, {} to a version; {restores_refused} refused) ({:.1}s)",
        kinds[0],
        kinds[1],
        kinds[2],
        started.elapsed().as_secs_f64()
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
