//! Timing helpers for the bench: repeated measurements and their
//! min/median/max, and the host's TSC rate (what QEMU's TCG hands an x86
//! guest as its TSC).

use anyhow::Result;
use std::time::{Duration, Instant};

/// Runs `measure` `runs` times; each call returns the time it measured.
pub fn time_command(
    runs: usize,
    mut measure: impl FnMut() -> Result<Duration>,
) -> Result<Vec<Duration>> {
    (0..runs).map(|_| measure()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

impl Summary {
    /// Min, median (the lower of the two middle values for an even count)
    /// and max of `samples`, which must not be empty.
    pub fn of(mut samples: Vec<Duration>) -> Summary {
        samples.sort();
        Summary {
            min: samples[0],
            median: samples[(samples.len() - 1) / 2],
            max: samples[samples.len() - 1],
        }
    }
}

/// Ticks per second of the host's TSC, measured over 50 ms. Under TCG
/// without `-icount`, QEMU gives an x86 guest the host's TSC.
pub fn host_tsc_hz() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no side effects.
        let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
        let (t0, c0) = (Instant::now(), tsc());
        std::thread::sleep(Duration::from_millis(50));
        let (ticks, took) = (tsc() - c0, t0.elapsed());
        (ticks as f64 / took.as_secs_f64()) as u64
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_min_median_max() {
        let ms = Duration::from_millis;
        let s = Summary::of(vec![ms(30), ms(10), ms(20)]);
        assert_eq!(
            s,
            Summary {
                min: ms(10),
                median: ms(20),
                max: ms(30)
            }
        );
        assert_eq!(Summary::of(vec![ms(4), ms(1), ms(3), ms(2)]).median, ms(2));
        assert_eq!(Summary::of(vec![ms(7)]).median, ms(7));
    }

    #[test]
    fn every_run_is_measured_and_errors_stop_the_bench() {
        let mut n = 0;
        let v = time_command(3, || {
            n += 1;
            Ok(Duration::from_millis(n))
        })
        .unwrap();
        assert_eq!(v.len(), 3);
        assert!(time_command(2, || anyhow::bail!("boom")).is_err());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_host_tsc_ticks_at_a_plausible_rate() {
        let hz = host_tsc_hz();
        assert!(hz > 100_000_000 && hz < 10_000_000_000, "{hz} Hz");
    }
}
