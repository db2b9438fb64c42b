//! Timing shared by every system: a closed loop with `depth` writes outstanding.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a timed loop did.
#[derive(Debug, Default)]
pub struct Run {
    pub writes: u64,
    pub bytes: u64,
    pub secs: f64,
    pub latencies: Vec<Duration>,
}

/// Runs `write(i)` from `depth` tasks until `secs` pass or `max_bytes` are written; each write
/// of `size` bytes is timed from call to durable.
pub async fn closed_loop<F, Fut>(
    depth: usize,
    secs: f64,
    size: usize,
    max_bytes: usize,
    write: F,
) -> Result<Run, String>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let write = Arc::new(write);
    let started = Instant::now();
    // `secs` may be infinite (a run bounded by bytes only).
    let limit = Duration::from_secs_f64(secs.min(1e9));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..depth)
        .map(|_| {
            let (write, next, latencies) = (write.clone(), next.clone(), latencies.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if started.elapsed() >= limit || (i as usize) * size >= max_bytes {
                        return Ok::<(), String>(());
                    }
                    let at = Instant::now();
                    write(i).await?;
                    latencies.lock().expect("latency lock").push(at.elapsed());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latency lock"));
    latencies.sort();
    let writes = latencies.len() as u64;
    Ok(Run {
        writes,
        bytes: writes * size as u64,
        secs,
        latencies,
    })
}
