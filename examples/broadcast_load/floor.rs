//! The crypto floors a run's CPU per message is set against, measured in the driver's thread
//! CPU time (not the wall clock) so that other processes on the machine do not inflate them.

use std::time::{Duration, Instant};

/// The CPU time this thread has used, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; this clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// The crypto floor on this machine, now: one 200-byte message encryption, on one core, for 2 s
/// (its CPU time per message).
pub fn crypto_floor_us(subscription: &aviso::push::PushSubscription) -> anyhow::Result<f64> {
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let cpu = thread_cpu_seconds();
    let mut runs = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        aviso::push::encrypt(subscription.keys(), &payload)?;
        runs += 1;
    }
    Ok((thread_cpu_seconds() - cpu) * 1e6 / f64::from(runs))
}

/// The same with the process's batch backend (`AVISO_CRYPTO_MB`), in runs of 24 as the engine
/// seals them: the floor when the multi-buffer backend is in use, `None` when it is not.
pub fn batch_floor_us(subscription: &aviso::push::PushSubscription) -> anyhow::Result<Option<f64>> {
    let (backend @ aviso::push::EcBackend::MultiBuffer(_), _) = aviso::push::EcBackend::detect()
    else {
        return Ok(None);
    };
    let payload = vec![b'x'; 200];
    let run = vec![(subscription.keys(), payload.as_slice()); 24];
    let started = Instant::now();
    let cpu = thread_cpu_seconds();
    let mut messages = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        for body in aviso::push::encrypt_batch(backend, &run) {
            body?;
        }
        messages += 24;
    }
    Ok(Some(
        (thread_cpu_seconds() - cpu) * 1e6 / f64::from(messages),
    ))
}

/// The value at fraction `p` of `sorted` (nearest rank); `sorted` must not be empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
