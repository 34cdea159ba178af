//! The workload's model (which library holds which functions, where it lives,
//! what it depends on) and the C sources generated from it. The model also
//! computes what `main` will print, with the same wrapping arithmetic.

use std::fmt::Write;

use crate::rng::Rng;
use crate::Spec;

/// One generated function: `v = v * mul + add`, repeated (so sizes vary).
pub struct Func {
    steps: Vec<(u64, u64)>,
}

/// One generated library.
pub struct Lib {
    /// Its number (file libwNNN.so).
    pub index: usize,
    /// Index into the workload's directories (RUNPATH ones first).
    pub dir: usize,
    /// The library it calls into (and links against), if any.
    pub dep: Option<usize>,
    /// Loaded with dlopen after main starts.
    pub dlopen: bool,
    funcs: Vec<Func>,
}

impl Lib {
    /// The library's file name.
    pub fn file_name(&self) -> String {
        format!("libw{:03}.so", self.index)
    }

    /// The name `-l` takes.
    pub fn link_name(&self) -> String {
        format!("w{:03}", self.index)
    }
}

/// The whole workload's model.
pub struct Model {
    /// The libraries, by index.
    pub libs: Vec<Lib>,
    /// The dlopen libraries are loaded only in a wide run.
    dlopen_when_wide: bool,
}

impl Model {
    /// Draws the model from `spec`'s seed.
    pub fn new(spec: &Spec) -> Model {
        let mut rng = Rng::new(spec.seed);
        let dirs = (spec.runpath_dirs + spec.env_dirs).max(1);
        let first_dlopen = spec.libs.saturating_sub(spec.dlopen_libs);
        let last_runpath = spec.runpath_dirs.saturating_sub(1);
        let last_env = if spec.env_dirs > 0 {
            spec.runpath_dirs + spec.env_dirs - 1
        } else {
            last_runpath
        };
        let libs = (0..spec.libs)
            .map(|index| {
                // Mostly the last directories, so the earlier ones are probed
                // (and fail) for most libraries.
                let r = rng.below(100);
                let dir = if r < 55 {
                    last_runpath
                } else if r < 75 {
                    last_env
                } else {
                    rng.below(dirs as u64) as usize
                };
                let dlopen = index >= first_dlopen;
                let dep =
                    (!dlopen && index + 1 < first_dlopen && rng.below(3) == 0).then_some(index + 1);
                let funcs = (0..spec.funcs_per_lib)
                    .map(|_| Func {
                        steps: (0..1 + rng.below(12))
                            .map(|_| (rng.next() | 1, rng.next()))
                            .collect(),
                    })
                    .collect();
                Lib {
                    index,
                    dir,
                    dep,
                    dlopen,
                    funcs,
                }
            })
            .collect();
        Model {
            libs,
            dlopen_when_wide: spec.dlopen_when_wide,
        }
    }

    /// What library `i`'s entry function returns for `x`.
    fn entry(&self, i: usize, x: u64) -> u64 {
        let lib = &self.libs[i];
        let mut sum = 0u64;
        for (j, f) in lib.funcs.iter().enumerate() {
            let mut v = x.wrapping_add(j as u64);
            for &(mul, add) in &f.steps {
                v = v.wrapping_mul(mul).wrapping_add(add);
            }
            sum = sum.wrapping_add(v);
        }
        if let Some(d) = lib.dep {
            sum = sum.wrapping_add(self.entry(d, x ^ i as u64));
        }
        sum
    }

    /// The line `main` prints.
    pub fn expected_stdout(&self) -> String {
        let mut c = 0u64;
        for lib in &self.libs {
            c = c
                .wrapping_mul(31)
                .wrapping_add(self.entry(lib.index, lib.index as u64 + 1));
        }
        format!("checksum {c}\n")
    }

    /// The C source of library `i`.
    pub fn lib_source(&self, i: usize) -> String {
        let lib = &self.libs[i];
        let mut s = String::from("#include <stdint.h>\n\n");
        if let Some(d) = lib.dep {
            let _ = writeln!(s, "uint64_t w{d:03}_entry(uint64_t x);\n");
        }
        for (j, f) in lib.funcs.iter().enumerate() {
            let _ = writeln!(
                s,
                "uint64_t w{i:03}_f{j}(uint64_t x)\n{{\n    uint64_t v = x;"
            );
            for (mul, add) in &f.steps {
                let _ = writeln!(s, "    v = v * {mul}ULL + {add}ULL;");
            }
            s.push_str("    return v;\n}\n\n");
        }
        let _ = writeln!(
            s,
            "uint64_t w{i:03}_entry(uint64_t x)\n{{\n    uint64_t sum = 0;"
        );
        for j in 0..lib.funcs.len() {
            let _ = writeln!(s, "    sum += w{i:03}_f{j}(x + {j}ULL);");
        }
        if let Some(d) = lib.dep {
            let _ = writeln!(s, "    sum += w{d:03}_entry(x ^ {i}ULL);");
        }
        s.push_str("    return sum;\n}\n");
        s
    }

    /// The C source of `main`.
    pub fn main_source(&self) -> String {
        let mut s = String::from(
            "#include <dlfcn.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <time.h>\n\n",
        );
        // With DLFM_WORKLOAD_STAMP set, main reports on stderr when it was
        // reached (CLOCK_REALTIME, ns) and, at the end, its peak RSS: the
        // startup benchmark's measurements.
        s.push_str(
            "static void stamp_rss(void)\n{\n    FILE *f = fopen(\"/proc/self/status\", \"r\");\n    char line[256];\n    \
             while (f && fgets(line, sizeof line, f))\n        if (strncmp(line, \"VmHWM:\", 6) == 0)\n            \
             fprintf(stderr, \"peak-rss-kib %ld\\n\", strtol(line + 6, NULL, 10));\n    if (f)\n        fclose(f);\n}\n\n",
        );
        for lib in self.libs.iter().filter(|l| !l.dlopen) {
            let _ = writeln!(s, "uint64_t w{:03}_entry(uint64_t x);", lib.index);
        }
        s.push_str(
            "\nint main(void)\n{\n    int stamp = getenv(\"DLFM_WORKLOAD_STAMP\") != NULL;\n    if (stamp) {\n        \
             struct timespec ts;\n        clock_gettime(CLOCK_REALTIME, &ts);\n        \
             fprintf(stderr, \"main-reached %lld\\n\", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);\n    }\n    uint64_t c = 0;\n",
        );
        let _ = writeln!(
            s,
            "    const char *size = getenv(\"OMPI_COMM_WORLD_SIZE\");\n    \
             int plugins = {} || (size && atoi(size) > 4);",
            i32::from(!self.dlopen_when_wide)
        );
        for lib in &self.libs {
            let (i, x) = (lib.index, lib.index + 1);
            if lib.dlopen {
                let _ = writeln!(
                    s,
                    "    if (plugins) {{\n        void *h = dlopen(\"{name}\", RTLD_NOW);\n        \
                     if (!h) {{ fprintf(stderr, \"dlopen: %s\\n\", dlerror()); return 1; }}\n        \
                     uint64_t (*e)(uint64_t) = (uint64_t (*)(uint64_t))dlsym(h, \"w{i:03}_entry\");\n        \
                     if (!e) {{ fprintf(stderr, \"dlsym: %s\\n\", dlerror()); return 1; }}\n        \
                     c = c * 31 + e({x}ULL);\n    }}",
                    name = lib.file_name()
                );
            } else {
                let _ = writeln!(s, "    c = c * 31 + w{i:03}_entry({x}ULL);");
            }
        }
        s.push_str("    printf(\"checksum %llu\\n\", (unsigned long long)c);\n    if (stamp)\n        stamp_rss();\n    return 0;\n}\n");
        s
    }
}
