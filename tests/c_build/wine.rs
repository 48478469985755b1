//! The Windows side of `c_build` ([`super::Variant::Wine`]): the C and C++ programs cross-built
//! with mingw-w64 against the DLL, import library and static library that `.ci/windows`
//! cross-builds (the folder named by `IUS_WINDOWS_LIB_DIR`), and run under Wine against the
//! emulators of this Linux process, which the Windows programs reach on 127.0.0.1.
//!
//! The programs' environment is the Linux one translated: a Linux path becomes a Windows path
//! (`C:\...` inside the Wine prefix's `drive_c`, `Z:\...` elsewhere), so the C programs open
//! their files by drive letter and backslashes, as on Windows. `.ci/windows` sets `WINEPREFIX`
//! and puts the test-only `ProcessPrng` stand-in on `WINEPATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder holding `intune_user_status.dll`, `libintune_user_status.dll.a` and
/// `libintune_user_status.a`, cross-built for `x86_64-pc-windows-gnu`.
pub const LIB_DIR: &str = "IUS_WINDOWS_LIB_DIR";

/// The files of [`LIB_DIR`]: the DLL, its import library, the static library.
pub const DLL: &str = "intune_user_status.dll";
const IMPORT_LIB: &str = "libintune_user_status.dll.a";
const STATIC_LIB: &str = "libintune_user_status.a";

/// What the Rust standard library inside the static library needs from Windows
/// (`rustc --print native-static-libs`), then what the test programs use themselves: Winsock
/// for the canned server, `version.dll` for reading the DLL's version resource.
const SYSTEM_LIBS: [&str; 8] = [
    "-lbcrypt",
    "-ladvapi32",
    "-lkernel32",
    "-lntdll",
    "-luserenv",
    "-lws2_32",
    "-ldbghelp",
    "-lversion",
];

/// The compilers' own runtimes linked in (winpthreads, libgcc, libstdc++), so a program needs
/// no DLL of mingw's beside it: only Windows' own and `intune_user_status.dll`. `-static`, not
/// `-static-libgcc -static-libstdc++`: with those the driver links its own `-lpthread` after
/// libstdc++ dynamically, and libstdc++'s uses of winpthreads (`pthread_once`,
/// `pthread_key_create`) came from `libwinpthread-1.dll` (test_cpp_wipe then could not start).
/// Windows' own libraries are import archives, which `-static` links as such.
const STATIC_RUNTIME: &str = "-static";

/// [`LIB_DIR`], checked to hold the three libraries.
pub fn lib_dir() -> PathBuf {
    let dir = std::env::var_os(LIB_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{LIB_DIR} is not set: the Windows C tests need the libraries cross-built by \
             .ci/windows (run it: it builds them and runs these tests)"
            )
        });
    for file in [DLL, IMPORT_LIB, STATIC_LIB] {
        assert!(
            dir.join(file).is_file(),
            "{LIB_DIR}={} has no {file}",
            dir.display()
        );
    }
    dir
}

/// The Wine loader: `IUS_WINE`, else Debian's `wine64`.
pub fn wine() -> OsString {
    std::env::var_os("IUS_WINE").unwrap_or_else(|| "/usr/lib/wine/wine64".into())
}

/// mingw-w64's C or C++ compiler with the POSIX thread model (winpthreads), which C++17's
/// `std::mutex` needs with gcc 12.
pub fn compiler(cpp: bool) -> Command {
    let name = if cpp {
        "x86_64-w64-mingw32-g++-posix"
    } else {
        "x86_64-w64-mingw32-gcc-posix"
    };
    assert!(
        super::tool_found(name),
        "`{name}` is required by the Windows C tests (Debian: apt-get install -y g++-mingw-w64-x86-64)"
    );
    Command::new(name)
}

/// Shared: the import library, by its path (under [`STATIC_RUNTIME`] `-lintune_user_status`
/// would find the static archive), and the DLL copied beside the programs, where Windows looks
/// for it. Static: the archive and the system libraries.
pub fn link_args(command: &mut Command, kind: &str, out_dir: &Path) {
    let lib = lib_dir();
    if kind == "shared" {
        command.arg(lib.join(IMPORT_LIB));
        std::fs::copy(lib.join(DLL), out_dir.join(DLL)).expect("copy the DLL beside the programs");
    } else {
        command.arg(lib.join(STATIC_LIB));
    }
    command.args(SYSTEM_LIBS).arg(STATIC_RUNTIME);
}

/// The C: drive of the Wine prefix (`$WINEPREFIX/drive_c`).
fn drive_c() -> PathBuf {
    let prefix = std::env::var_os("WINEPREFIX").unwrap_or_else(|| {
        panic!("WINEPREFIX is not set: .ci/windows sets it to a prefix of its own")
    });
    PathBuf::from(prefix).join("drive_c")
}

/// A fresh folder on the Wine prefix's C: drive, for files the programs write.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = drive_c().join("ius-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder on drive C:");
    dir
}

/// An environment value as a Windows program should see it: an absolute Linux path becomes
/// `C:\...` inside the prefix's C: drive and `Z:\...` (Wine's drive for `/`) elsewhere; any
/// other value is kept.
pub fn translate(value: &str) -> String {
    if !value.starts_with('/') {
        return value.to_owned();
    }
    let path = Path::new(value);
    let (drive, rest) = match path.strip_prefix(drive_c()) {
        Ok(rest) => ("C:", rest.to_string_lossy().into_owned()),
        Err(_) => ("Z:", value.to_owned()),
    };
    let rest = rest.trim_start_matches('/').replace('/', "\\");
    format!("{drive}\\{rest}")
}

/// The names the DLL exports (its export table, read with mingw's objdump).
pub fn exported_names(dll: &Path) -> Vec<String> {
    let objdump = "x86_64-w64-mingw32-objdump";
    let listing = super::run("objdump -p", Command::new(objdump).arg("-p").arg(dll));
    // "[Ordinal/Name Pointer] Table" is followed by one "\t[   n] name" line per export.
    let table = listing
        .split_once("[Ordinal/Name Pointer] Table")
        .unwrap_or_else(|| panic!("no export table in {}:\n{listing}", dll.display()))
        .1;
    table
        .lines()
        .skip(1)
        .map_while(|line| {
            let (index, name) = line.trim().split_once(']')?;
            index.starts_with('[').then(|| name.trim().to_owned())
        })
        .collect()
}

/// The CMake project configured for Windows (`bindings-c/cmake/mingw-w64-x86_64.cmake`: mingw-w64,
/// Wine as the emulator ctest runs programs with) against [`LIB_DIR`], installed into a stage,
/// and its `find_package` and pkg-config consumers built against that copy and run under Wine.
/// Returns the stage.
pub fn cmake_package() -> PathBuf {
    for (tool, package) in [("cmake", "cmake"), ("pkg-config", "pkg-config")] {
        assert!(
            super::tool_found(tool),
            "`{tool}` is required by the Windows CMake package test (Debian: apt-get install -y {package})"
        );
    }
    let toolchain =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings-c/cmake/mingw-w64-x86_64.cmake");
    super::cmake_install_and_consumers(
        "cmake-windows",
        &lib_dir(),
        &[
            super::define("CMAKE_TOOLCHAIN_FILE", &toolchain),
            super::define("IUS_WINE", Path::new(&wine())),
        ],
    )
}

/// A 2 MiB disk for `test_c_outbox`'s full-disk check under Wine (Windows has no file size limit
/// to stand in for a full disk): a tmpfs mounted on a folder the programs see as
/// `IUS_OUTBOX_SMALL_DIR`, unmounted when dropped. Mounting needs root (CI runs as root).
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: PathBuf) -> SmallDisk {
        // A disk a killed run left mounted goes first.
        let _ = Command::new("umount").arg(&dir).output();
        std::fs::create_dir_all(&dir).expect("the small disk's folder");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0777", "ius-small-disk"])
            .arg(&dir)
            .output();
        match output {
            Ok(out) if out.status.success() => SmallDisk { dir },
            Ok(out) => panic!(
                "the full-disk check under Wine mounts a 2 MiB tmpfs on {}, which needs root: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => panic!("could not run mount: {err}"),
        }
    }

    /// `IUS_OUTBOX_SMALL_DIR` and the disk's folder (a Linux path: [`translate`] turns it into
    /// the Windows one).
    pub fn env(&self) -> (String, String) {
        (
            "IUS_OUTBOX_SMALL_DIR".to_owned(),
            self.dir.display().to_string(),
        )
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
