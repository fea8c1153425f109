//! The libc calls the speaker needs that no safe wrapper offers: `setsockopt(TCP_MD5SIG)` (RFC 2385),
//! `setsockopt(IP_MINTTL / IPV6_MINHOPCOUNT)` (GTSM, RFC 5082)
//! and, for the process that runs it, `mallopt(M_MMAP_THRESHOLD)`, `mallopt(M_ARENA_MAX)` and
//! `malloc_trim`.
//!
//! Role: set or remove the TCP MD5 signature key for one peer address on a socket (a listener: the key
//! applies to connections from that address; a connecting socket: to its connection); and keep the
//! allocator from holding on to the memory of large tables once they are freed.
//! Inputs: a socket, the peer's address, the key (empty removes it).
//! Outputs: the syscall's result as an `io::Result`.
//!
//! The option's value is the kernel's `struct tcp_md5sig` (linux/tcp.h), built here as plain bytes:
//! a 128-byte `sockaddr_storage`, then flags (u8), prefix length (u8), key length (u16), ifindex (i32)
//! and an 80-byte key: 216 bytes in all.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

/// The longest key the kernel takes.
pub const MAX_KEY_LEN: usize = 80;
const SOCKADDR_STORAGE: usize = 128;
const VALUE_LEN: usize = SOCKADDR_STORAGE + 1 + 1 + 2 + 4 + MAX_KEY_LEN;

/// The `struct tcp_md5sig` for `peer` and `key`, as bytes in the machine's byte order.
fn md5sig_value(peer: IpAddr, key: &[u8]) -> io::Result<[u8; VALUE_LEN]> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MAX_KEY_LEN} bytes"),
        ));
    }
    let mut v = [0u8; VALUE_LEN];
    match peer {
        IpAddr::V4(a) => {
            // struct sockaddr_in: family, port (0), address.
            v[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            v[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            // struct sockaddr_in6: family, port (0), flow info (0), address, scope id (0).
            v[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            v[8..24].copy_from_slice(&a.octets());
        }
    }
    let at = SOCKADDR_STORAGE + 2; // after flags and prefix length (0: the exact address)
    v[at..at + 2].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    let key_at = SOCKADDR_STORAGE + 8;
    v[key_at..key_at + key.len()].copy_from_slice(key);
    Ok(v)
}

/// Sets the TCP MD5 key for connections with `peer` on `socket` (an empty key removes it).
///
/// A socket of the IPv6 family needs an IPv6 address: pass IPv4 peers as IPv4-mapped addresses there.
pub fn set_tcp_md5sig(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    let value = md5sig_value(peer, key)?;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is a valid open socket borrowed for the duration of the call; `value` is a live,
    // initialised buffer of exactly the length passed, which the kernel only reads.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            value.as_ptr().cast::<libc::c_void>(),
            VALUE_LEN as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Drops packets of connections on `socket` that arrive with a TTL (IPv6: hop limit) below `min`: the
/// receiving half of GTSM (RFC 5082). `v6` names the socket's family.
pub fn set_min_ttl(socket: &impl AsFd, v6: bool, min: u8) -> io::Result<()> {
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    };
    let value = libc::c_int::from(min);
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is a valid open socket borrowed for the duration of the call; `value` is a live int
    // of the length passed, which the kernel only reads.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Large allocations (64 KiB and up: the RIB's and the FIB task's hash tables, queued route batches) get
/// their own mappings, returned to the kernel when freed. glibc's default threshold grows to the size of
/// the largest block freed, after which a table that doubles leaves its old copy in the heap, where it
/// counts in the resident set: with 100,000 routes that was a quarter of the speaker's peak (49 MB against
/// 36 MB measured by `bgp-converge`). Call it once at process start, before other threads exist; it is a
/// process-wide setting, so the binaries call it, not the library. A no-op where the C library is not glibc.
pub fn return_large_frees_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` takes two integers and changes only the allocator's tuning; called before any
        // other thread is started, so no allocation is in progress concurrently.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) };
    }
}

/// Every thread allocates from one malloc arena. glibc gives each thread that allocates an arena of its
/// own (the speaker has four: two tokio workers, the FIB thread, main), and each keeps the memory its
/// bursts of small allocations freed (decoded UPDATEs, route batches, hash tables while small) for its own
/// later use: with 100,000 routes arriving that was 2–3 MB of the daemon's peak resident set across the
/// arenas, about 1 MB more than with one (measured by `bgp-converge`). Small allocations mostly come from
/// each thread's cache without taking the arena's lock. Call it once at process start, before other
/// threads exist; a process-wide setting, for the standalone daemon (a process embedding the speaker
/// decides for itself). A no-op where the C library is not glibc.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` takes two integers and changes only the allocator's tuning; called before any
        // other thread is started, so no allocation is in progress concurrently.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

/// Gives the kernel back the whole free pages inside the allocator's heap (`malloc_trim(0)`). Growing hash
/// tables and bursts of decoded UPDATEs leave free blocks between live ones, which glibc keeps resident
/// (it only returns the heap's top); the FIB task calls this when a burst of route changes is over, so the
/// next burst does not start from the last one's leftovers. Only the allocator's own free memory is
/// affected; it costs a walk of the free blocks. A no-op where the C library is not glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` is thread-safe (it takes each arena's lock) and only releases memory the
        // allocator holds as free; its result says whether any was released, which needs no handling.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_has_the_kernel_layout() {
        let v = md5sig_value("10.250.0.12".parse().unwrap(), b"secret").unwrap();
        assert_eq!(v.len(), 216);
        assert_eq!(&v[4..8], &[10, 250, 0, 12]);
        assert_eq!(u16::from_ne_bytes([v[130], v[131]]), 6);
        assert_eq!(&v[136..142], b"secret");
        assert!(md5sig_value("::1".parse().unwrap(), &[0; 81]).is_err());
    }

    #[test]
    fn a_key_can_be_set_and_removed_on_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        set_tcp_md5sig(&l, peer, b"secret").unwrap();
        set_tcp_md5sig(&l, peer, b"").unwrap();
    }
}
