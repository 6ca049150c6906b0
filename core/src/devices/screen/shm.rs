//! A shared memory segment the X server writes captured pictures into (MIT-SHM 1.2: a memfd
//! passed to the server), mapped once so every capture is read in place.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

/// A read-write shared mapping of a memfd, unmapped on drop.
pub(super) struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// that ownership (the X server writes into it only while serving a request the owner waits on).
unsafe impl Send for SharedMapping {}

impl SharedMapping {
    /// A zeroed mapping of `len` bytes and the file descriptor that backs it (to hand to the
    /// server; the mapping stays valid after the descriptor is closed).
    pub fn new(len: usize) -> std::io::Result<(Self, OwnedFd)> {
        if len == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
        let fd = memfd_create("aula-screen", MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, len as u64)?;
        // SAFETY: a fresh shared mapping of a file we just sized to `len`; the kernel picks the
        // address, so nothing else in this process aliases it.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned a null mapping"))?;
        Ok((Self { ptr, len }, fd))
    }

    /// The mapped bytes, mutable (to draw the cursor in before converting).
    ///
    /// Only call this between requests: the X server writes the mapping while it serves a
    /// `ShmGetImage`, and the caller reads only after that request's reply.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for the life of `self`, and `&mut self` makes this
        // the only view of them in the process; the server writes only during a request the
        // owner waits for before calling this (see above).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no slice of the mapping
        // outlives `self` (slices borrow it).
        if let Err(err) = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::debug!(error = %err, "munmap of the screen buffer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_is_zeroed_writable_and_shared_with_its_file() {
        let (mut map, fd) = SharedMapping::new(8192).expect("memfd mapping");
        assert!(map.bytes_mut().iter().all(|&b| b == 0));
        map.bytes_mut()[4096] = 7;
        let mut byte = [0u8; 1];
        rustix::io::pread(&fd, &mut byte, 4096).expect("read back");
        assert_eq!(byte[0], 7, "the file sees what the mapping holds");
        assert!(SharedMapping::new(0).is_err());
    }
}
