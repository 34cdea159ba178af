//! Recording (write-cache): after each real call, appends what ld.so looked
//! up and what it got to the journal, one `write(2)` per record on an
//! `O_APPEND` descriptor so that concurrent recorders (a pilot and its
//! children) never interleave inside a record.

use dlfm_cache::journal::{encode, Record, MAX_RECORD};
use dlfm_cache::read::STAT_SIZE;

use linux_raw_sys::auxvec::AT_EXECFN;

use crate::config::PathBuf;
use crate::ident::Ids;
use crate::initial_stack::InitialStack;
use crate::lookup;
use crate::own_file::{OpenError, OwnFile};
use crate::state::OffReason;
use crate::sys::{self, nr};

/// How many opened libraries are followed at once (ld.so opens one at a
/// time); past that, mappings of further files are not journalled.
const TRACKED: usize = 8;
/// A stat record for a failed lookup carries zeros.
static NO_STAT: [u8; STAT_SIZE] = [0; STAT_SIZE];

/// A descriptor ld.so opened on a recorded path.
struct Tracked {
    used: bool,
    fd: i64,
    path: PathBuf,
}

/// The journal and the descriptors being followed (meaningful once `start`
/// succeeded; all zero before, so the state lives in `.bss`).
pub struct Recorder {
    journal: OwnFile,
    tracked: [Tracked; TRACKED],
    buf: [u8; MAX_RECORD],
}

impl Recorder {
    /// Not recording.
    pub const EMPTY: Recorder = Recorder {
        journal: OwnFile::EMPTY,
        tracked: [const {
            Tracked {
                used: false,
                fd: 0,
                path: PathBuf::EMPTY,
            }
        }; TRACKED],
        buf: [0; MAX_RECORD],
    };

    /// Opens the journal for appending and records who this process is.
    pub fn start(
        &mut self,
        journal: &PathBuf,
        ids: &Ids,
        stack: &InitialStack,
    ) -> Result<(), (OffReason, &'static [u8])> {
        // Never O_CREAT: only a journal dlfm.pre write-cache prepared is
        // appended to, so a wrong DLFM_CACHE or working directory leaves no
        // stray file behind.
        match self.journal.open(journal, nr::O_WRONLY | nr::O_APPEND) {
            Ok(_) => {}
            Err(OpenError::Open) => return Err((OffReason::JournalOpen, b"")),
            Err(OpenError::NotRegular) => return Err((OffReason::JournalNotRegular, b"")),
        }
        let exe = match stack.aux(AT_EXECFN) {
            // SAFETY: AT_EXECFN points at the NUL-terminated name the program
            // was executed by.
            Some(p) if p != 0 => unsafe {
                let n = dlfm_bytes::c_strlen(p as *const u8, crate::config::PATH_MAX).unwrap_or(0);
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
        Ok(())
    }

    /// Journals call `nr` with arguments `a` that returned `result`; returns
    /// whether it was a lookup worth a record.
    pub fn after(&mut self, nr: u64, a: &[u64; 6], result: i64) -> bool {
        match nr as u32 {
            nr::__NR_openat => match lookup::open_key(a) {
                Some(path) => {
                    self.opened(path, a[2] as u32, result);
                    true
                }
                None => false,
            },
            nr::__NR_newfstatat => match lookup::stat_key(a) {
                Some(path) => {
                    let stat = if result == 0 {
                        // SAFETY: on success the kernel filled STAT_SIZE
                        // bytes at ld.so's buffer a[2].
                        unsafe { &*(a[2] as *const [u8; STAT_SIZE]) }
                    } else {
                        &NO_STAT
                    };
                    self.append(&Record::Stat {
                        flags: 0,
                        result: result as i32,
                        stat,
                        path,
                    });
                    true
                }
                None => false,
            },
            nr::__NR_access => match lookup::access_key(a) {
                Some(path) => {
                    self.append(&Record::Access {
                        mode: a[1] as u32,
                        result: result as i32,
                        path,
                    });
                    true
                }
                None => false,
            },
            nr::__NR_mmap if !(-4095..0).contains(&result) => {
                let Some(i) = self.find(a[4] as i32 as i64) else {
                    return false;
                };
                let (prot, flags, offset, len) = (a[2] as u32, a[3] as u32, a[5], a[1]);
                // Split borrow: the path lives in `tracked`, the buffer in `buf`.
                let Recorder {
                    journal,
                    tracked,
                    buf,
                } = self;
                if let Some(t) = tracked.get(i) {
                    let rec = Record::Map {
                        prot,
                        flags,
                        offset,
                        len,
                        path: t.path.as_bytes(),
                    };
                    write_record(journal, buf, &rec);
                }
                true
            }
            nr::__NR_close if result == 0 => {
                if let Some(i) = self.find(a[0] as i32 as i64) {
                    if let Some(t) = self.tracked.get_mut(i) {
                        t.used = false;
                    }
                }
                false
            }
            _ => false,
        }
    }

    /// Records an `open` and, on success, the file's stat at this moment
    /// (which `dlfm.pre` compares with the disk when it packs).
    fn opened(&mut self, path: &[u8], flags: u32, result: i64) {
        let mut stat = core::mem::MaybeUninit::<[u8; STAT_SIZE]>::uninit();
        // SAFETY: `stat` is STAT_SIZE writable bytes.
        let have_stat =
            result >= 0 && unsafe { sys::fstat(result as i32, stat.as_mut_ptr() as *mut u8) } == 0;
        // SAFETY: filled by the successful fstat.
        let stat_ref = have_stat.then(|| unsafe { &*stat.as_ptr() });
        self.append(&Record::Open {
            flags,
            result: result as i32,
            stat: stat_ref,
            path,
        });
        if result >= 0 {
            if let Some(t) = self.tracked.iter_mut().find(|t| !t.used) {
                if t.path.set(path) {
                    t.used = true;
                    t.fd = result;
                }
            }
        }
    }

    fn find(&self, fd: i64) -> Option<usize> {
        self.tracked.iter().position(|t| t.used && t.fd == fd)
    }

    fn append(&mut self, rec: &Record<'_>) {
        write_record(&mut self.journal, &mut self.buf, rec);
    }
}

/// Encodes `rec` into `buf` and appends it to the journal with one write,
/// if the journal's descriptor is still the journal (see `own_file`).
fn write_record(journal: &mut OwnFile, buf: &mut [u8; MAX_RECORD], rec: &Record<'_>) {
    if let Some(n) = encode(rec, buf) {
        if let (Some(bytes), Some(fd)) = (buf.get(..n), journal.ensure()) {
            sys::write(fd, bytes);
        }
    }
}
