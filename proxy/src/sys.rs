//! The proxy's one system call that neither the standard library nor rustix offers.
//!
//! Inputs: none. Outputs: the calling thread's scheduling policy.

use std::io;

/// Puts the calling thread under `SCHED_BATCH`: the same CPU share as any other thread, but its
/// wake-ups do not preempt the thread running on the CPU, so it runs a little later and finds more work
/// when it does.
pub fn schedule_as_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is an initialised `sched_param` the kernel only reads during the call; pid 0 is
    // the calling thread.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
