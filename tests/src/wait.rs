//! Waiting for a condition with a deadline, reporting what was awaited and the last error seen.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Polls `check` every 50 ms until it returns `Ok(true)` or `timeout` passes.
///
/// An `Err` from `check` counts as "not yet" (the thing may be starting); the last one is quoted when the
/// wait times out, so the failure says why it never became true.
pub fn wait_until<F>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(err) => last_error = Some(format!("{err:#}")),
        }
        if start.elapsed() >= timeout {
            match last_error {
                Some(err) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {err}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_true() {
        let mut n = 0;
        wait_until(Duration::from_secs(5), "three calls", || {
            n += 1;
            Ok(n >= 3)
        })
        .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn times_out_quoting_the_last_error() {
        let err = wait_until(Duration::from_millis(120), "the impossible", || {
            anyhow::bail!("still broken")
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("the impossible") && text.contains("still broken"),
            "{text}"
        );
    }
}
