//! Recording (write-cache): after each real call, appends what ld.so looked
//! up and what it got to the journal, one `write(2)` per record on an
//! `O_APPEND` descriptor so that concurrent recorders (a pilot and its
//! children) never interleave inside a record.

use dlfm_cache::journal::{decode, encode, stored_open_flags, Origin, Record, MAX_RECORD};
use dlfm_cache::layout::STAT_SIZE;
use dlfm_cache::stat::{self, KERNEL_STAT_SIZE};

use linux_raw_sys::auxvec::AT_EXECFN;

use crate::ident::Ids;
use crate::initial_stack::InitialStack;
use crate::lookup;
use crate::off_reason::OffReason;
use crate::own_file::{OpenError, OwnFile};
use crate::sys::{self, nr};
use dlfm_runtime::fixed_path::FixedPath;

/// The journal and the buffer records are encoded in (meaningful once
/// `start` succeeded; all zero before, so the state lives in `.bss`).
pub struct Recorder {
    journal: OwnFile,
    buf: [u8; MAX_RECORD],
}

impl Recorder {
    /// Not recording.
    pub const EMPTY: Recorder = Recorder {
        journal: OwnFile::EMPTY,
        buf: [0; MAX_RECORD],
    };

    /// Opens the journal for appending and records who this process is.
    pub fn start(
        &mut self,
        journal: &FixedPath,
        ids: &Ids,
        stack: &InitialStack,
    ) -> Result<(), (OffReason, &'static [u8])> {
        // Never O_CREAT: only a journal dlfm.pre write-cache prepared is
        // appended to, so a wrong DLFM_CACHE or working directory leaves no
        // stray file behind. Read and write: its first record (see `setup`)
        // is read back.
        match self.journal.open(journal, nr::O_RDWR | nr::O_APPEND) {
            Ok(_) => {}
            Err(OpenError::Open) => return Err((OffReason::JournalOpen, b"")),
            Err(OpenError::NotRegular) => return Err((OffReason::JournalNotRegular, b"")),
        }
        self.introduce(ids, stack);
        Ok(())
    }

    /// Opens (creating it) the node's miss journal for read-cache's record
    /// of what the cache missed (see `misses`), and records who this
    /// process is; false if it cannot be opened.
    pub fn start_misses(&mut self, journal: &FixedPath, ids: &Ids, stack: &InitialStack) -> bool {
        let flags = nr::O_WRONLY | nr::O_APPEND | nr::O_CREAT | nr::O_NOFOLLOW;
        if self.journal.create(journal, flags, 0o644).is_err() {
            return false;
        }
        self.introduce(ids, stack);
        true
    }

    /// Appends the record naming this process, its program and ld.so.
    fn introduce(&mut self, ids: &Ids, stack: &InitialStack) {
        let exe = match stack.aux(AT_EXECFN) {
            // SAFETY: AT_EXECFN points at the NUL-terminated name the program
            // was executed by.
            Some(p) if p != 0 => unsafe {
                let n = dlfm_bytes::c_strlen(p as *const u8, dlfm_runtime::fixed_path::PATH_MAX)
                    .unwrap_or(0);
                core::slice::from_raw_parts(p as *const u8, n)
            },
            _ => &[],
        };
        self.append(&Record::Process {
            pid: sys::getpid() as u32,
            program_id: ids.program.as_bytes(),
            ldso_id: ids.ldso.as_bytes(),
            exe,
        });
    }

    /// The FMCaching interposers the journal's Setup record (written by
    /// `dlfm.pre write-cache`) names, NUL-separated (`journal::interposers`
    /// reads them), if any.
    pub fn setup(&mut self) -> Option<&[u8]> {
        let fd = self.journal.ensure()?;
        // SAFETY: `buf` is MAX_RECORD writable bytes.
        let n = unsafe { sys::pread(fd, self.buf.as_mut_ptr(), MAX_RECORD, 0) };
        let got = self.buf.get(..usize::try_from(n).ok()?)?;
        match decode(got)? {
            (Record::Setup { fm_paths }, ..) => Some(fm_paths),
            _ => None,
        }
    }

    /// Journals call `nr` with arguments `a` that returned `result`; returns
    /// whether it was a lookup worth a record.
    /// A relative path's key is joined to the working directory in `rel`.
    pub fn after(&mut self, nr: u64, a: &[u64; 6], result: i64, rel: &mut FixedPath) -> bool {
        match nr as u32 {
            nr::__NR_openat => match lookup::open_key(a, Some(rel)) {
                Some(path) => {
                    self.opened(path, a[2] as u32, result);
                    true
                }
                None => false,
            },
            nr::__NR_newfstatat => match lookup::stat_key(a, Some(rel)) {
                Some(path) => {
                    let mut stored = [0u8; STAT_SIZE];
                    if result == 0 {
                        // SAFETY: on success the kernel filled a whole
                        // struct stat at ld.so's buffer a[2].
                        let kernel = unsafe {
                            core::slice::from_raw_parts(a[2] as *const u8, KERNEL_STAT_SIZE)
                        };
                        stat::store(kernel, &mut stored);
                    }
                    self.append(&Record::Stat {
                        flags: 0,
                        result: result as i32,
                        stat: &stored,
                        path,
                    });
                    true
                }
                None => false,
            },
            sys::ACCESS => match lookup::access_key(a, Some(rel)) {
                Some((path, mode)) => {
                    self.append(&Record::Access {
                        mode,
                        result: result as i32,
                        path,
                    });
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Journals `access(path, mode)` that gave `result`.
    pub fn access(&mut self, path: &[u8], mode: u32, result: i64) {
        self.append(&Record::Access {
            mode,
            result: result as i32,
            path,
        });
    }

    /// Records an `open` and, on success, the file's stat at this moment
    /// (which `dlfm.pre` compares with the disk when it packs).
    fn opened(&mut self, path: &[u8], flags: u32, result: i64) {
        let mut kernel = [0u8; KERNEL_STAT_SIZE];
        let mut stored = [0u8; STAT_SIZE];
        // SAFETY: `kernel` has room for the kernel's struct stat.
        let have_stat = sys::errno_of(result).is_none()
            && unsafe { sys::fstat(result as i32, kernel.as_mut_ptr()) } == 0;
        if have_stat {
            stat::store(&kernel, &mut stored);
        }
        self.append(&Record::Open {
            flags: stored_open_flags(flags),
            result: result as i32,
            stat: have_stat.then_some(&stored),
            path,
        });
    }

    fn append(&mut self, rec: &Record<'_>) {
        write_record(&mut self.journal, &mut self.buf, rec);
    }
}

/// Encodes `rec` into `buf` and appends it to the journal with one write,
/// if the journal's descriptor is still the journal (see `own_file`).
fn write_record(journal: &mut OwnFile, buf: &mut [u8; MAX_RECORD], rec: &Record<'_>) {
    if let Some(n) = encode(rec, Origin::Ldso, buf) {
        if let (Some(bytes), Some(fd)) = (buf.get(..n), journal.ensure()) {
            sys::write(fd, bytes);
        }
    }
}
