//! The one syscall Felix needs that no safe wrapper offers: `unshare(CLONE_NEWNET)`, which gives the
//! calling thread a network namespace of its own.
//!
//! Role: let a kernel-feature probe ([`crate::ipip`]) create a throwaway link where nobody else can see
//! it; the namespace disappears with the thread and its sockets. Inputs: none. Outputs: the syscall's
//! result.

use std::io;

/// Moves the calling thread into a new, empty network namespace. Call it only on a short-lived thread
/// of its own: every socket that thread opens afterwards belongs to the new namespace.
pub fn unshare_netns() -> io::Result<()> {
    // SAFETY: `unshare_unsafe` is unsafe only because of `CLONE_FILES`, which splits the file
    // descriptor table between threads; `NEWNET` alone changes only the calling thread's network
    // namespace and leaves every descriptor valid on every thread.
    #[allow(unsafe_code)]
    let result = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) };
    result.map_err(io::Error::from)
}
