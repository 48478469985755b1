//! Builds and runs the C and C++ programs of `bindings-c/` for `tests/c_api.rs`, without cmake.
//!
//! The compilers and their base flags come from the `cc` crate, found as a build script finds
//! them (`CC`/`CXX` and `CFLAGS`/`CXXFLAGS` are honoured; gcc and clang alike); on top go the
//! project's flags: C11 or C++17 and `-Wall -Wextra -Wpedantic -Werror`. Test programs are linked
//! to the shared library (by its SONAME, found through an rpath) and to the static one.
//!
//! **Adding a C or C++ test program is one line in [`PROGRAMS`]**, e.g.
//! `Program::test("tests/test_c_bulk.c", "{kind}")`: it is then compiled from
//! `bindings-c/tests/test_c_bulk.c`, linked both ways and run with argv\[1\] `shared` or `static`,
//! plainly, under valgrind and with sanitizers. The servers it needs reach it through the
//! environment that `tests/c_api.rs` passes to [`Suite::run`].
//!
//! [`cmake_package`] is the one part that needs cmake: the CMake project's install and its
//! `find_package` and pkg-config consumers.
//!
//! [`Variant::Wine`] builds the same programs for Windows with mingw-w64 and runs them under
//! Wine (`wine.rs`); `.ci/windows` runs those tests.

pub mod wine;

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// One C or C++ source of `bindings-c/` and what is done with it.
pub struct Program {
    /// The source, relative to `bindings-c/`; `.c` is C11, `.cpp` C++17.
    source: &'static str,
    usage: Usage,
    /// A valgrind suppressions file (relative to `bindings-c/`) for this program alone.
    suppressions: Option<&'static str>,
}

enum Usage {
    /// Compiled to an object file only (the header checks).
    Object,
    /// Linked to the shared library and not run: programs for users, compiled as they are.
    Build,
    /// Linked to the shared and to the static library and run with this argument, in which
    /// `{kind}` becomes `shared` or `static`.
    Test(&'static str),
}

impl Program {
    const fn object(source: &'static str) -> Program {
        Program {
            source,
            usage: Usage::Object,
            suppressions: None,
        }
    }
    const fn build(source: &'static str) -> Program {
        Program {
            source,
            usage: Usage::Build,
            suppressions: None,
        }
    }
    const fn test(source: &'static str, argument: &'static str) -> Program {
        Program {
            source,
            usage: Usage::Test(argument),
            suppressions: None,
        }
    }
    /// Runs under valgrind with `file`'s suppressions (the other programs get none).
    const fn suppressed(self, file: &'static str) -> Program {
        Program {
            suppressions: Some(file),
            ..self
        }
    }

    /// The executable's name: the file stem, `_cpp` for C++, and the build kind.
    fn name(&self, kind: &str) -> String {
        let path = Path::new(self.source);
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let lang = if self.is_cpp() { "_cpp" } else { "" };
        format!("{stem}{lang}_{kind}")
    }

    fn is_cpp(&self) -> bool {
        self.source.ends_with(".cpp")
    }
}

/// Every C and C++ program of `bindings-c/`. One line per program; see the module's docs.
pub const PROGRAMS: &[Program] = &[
    // The headers compile on their own and included twice, as C11 and C++17.
    Program::object("tests/header_twice.c"),
    Program::object("tests/header_twice.cpp"),
    Program::object("tests/hpp_twice.cpp"),
    // The quick starts (tests/c_header.rs keeps them equal to README.md's C one and
    // docs/c-api.md's C++ one), the examples and the benchmark.
    Program::build("quickstart/quickstart.c"),
    Program::build("quickstart/quickstart.cpp"),
    Program::build("examples/update_user_status.c"),
    Program::build("examples/update_user_status.cpp"),
    Program::build("examples/outbox_agent.c"),
    Program::build("examples/service_stop.c"),
    Program::build("bench.c"),
    // The C and C++ API tests; argv[1] is the prefix of the statuses their threads write.
    Program::test("tests/test_c_api.c", "{kind}"),
    Program::test("tests/test_cpp_api.cpp", "cpp-{kind}"),
    // The fault matrix: each scenario's emulator comes from IUS_FAULT_<KIND>_<SCENARIO>.
    Program::test("tests/test_c_faults.c", "{kind}"),
    // App-only credentials, the token and log callbacks: the emulator is IUS_AUTH_<KIND>_URL.
    Program::test("tests/test_c_auth.c", "{kind}"),
    // HTTPS with an extra CA, a CONNECT proxy with credentials: the servers are IUS_NET_<KIND>_*.
    // The one program that speaks TLS, and so the one whose valgrind run hides memcheck's false
    // reports on ring's AES-GCM assembly.
    Program::test("tests/test_c_network.c", "{kind}").suppressed("tests/valgrind-ring-aead.supp"),
    // Bulk updates and get/list/create/delete: the emulators are IUS_BULK_<KIND>_*.
    Program::test("tests/test_c_bulk.c", "{kind}"),
    // The durable outbox: the emulator is IUS_OUTBOX_<KIND>_URL, files go under IUS_OUTBOX_DIR.
    Program::test("tests/test_c_outbox.c", "{kind}"),
    // Managed and workload identity: the emulator is IUS_IDENTITY_<KIND>_URL.
    Program::test("tests/test_c_identity.c", "{kind}"),
    // The C++ token source's copy of a token is wiped before it is released (no server needed).
    Program::test("tests/test_cpp_wipe.cpp", "{kind}"),
    // ius_client_interrupt during each kind of wait: the emulator is IUS_INTERRUPT_<KIND>_URL.
    Program::test("tests/test_c_interrupt.c", "{kind}"),
    Program::test("tests/test_cpp_interrupt.cpp", "{kind}"),
    // ius_client_metrics after a known sequence: the emulator is IUS_METRICS_<KIND>_URL.
    Program::test("tests/test_c_metrics.c", "{kind}"),
];

/// The build kinds every test program is linked as.
pub const KINDS: [&str; 2] = ["shared", "static"];

/// The longest a test program may run (as ctest's `--timeout` did).
const TIMEOUT: Duration = Duration::from_secs(120);

/// How the programs are built and run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    Plain,
    /// As plain, compiled with clang and clang++ whatever `CC` and `CXX` say.
    Clang,
    /// Run under valgrind's memcheck: no errors, no definite or indirect leaks.
    Valgrind,
    /// Compiled and linked with AddressSanitizer and UndefinedBehaviorSanitizer, against the
    /// library built with AddressSanitizer too ([`build_asan_library`]).
    Sanitize,
    /// Cross-built for Windows with mingw-w64 against the DLL `.ci/windows` built, run under Wine.
    Wine,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Clang => "clang",
            Variant::Valgrind => "valgrind",
            Variant::Sanitize => "sanitize",
            Variant::Wine => "wine",
        }
    }
}

/// Memcheck's options, with a program's own suppressions file if it has one.
fn valgrind_prefix(suppressions: Option<&str>) -> Vec<OsString> {
    let mut prefix: Vec<OsString> = [
        "valgrind",
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--show-leak-kinds=definite,indirect",
        "--num-callers=60",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if let Some(file) = suppressions {
        let mut arg = OsString::from("--suppressions=");
        arg.push(bindings_dir().join(file));
        prefix.push(arg);
    }
    prefix
}

const WARNINGS: [&str; 4] = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"];
/// UBSan stops at the first finding; ASan's leak check is set through ASAN_OPTIONS.
const SANITIZE: [&str; 3] = [
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bindings_dir() -> PathBuf {
    root().join("bindings-c")
}

/// target/debug (or target/release): where cargo put this test and the library.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The SONAME the library carries (bindings-c/build.rs): the ABI's major version.
pub const SONAME: &str = concat!("libintune_user_status.so.", env!("CARGO_PKG_VERSION_MAJOR"));

/// Builds the shared and static library (the package `bindings-c/`) with cargo, in this test's
/// profile, with the test seams (`test_c_identity` stands in for Azure Arc's agent through
/// `IUS_TEST_ARC_TOKENS_FOLDER`, which only such a build reads); returns the shared object's path.
pub fn build_library() -> PathBuf {
    let profile = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.current_dir(root()).args([
        "build",
        "-p",
        "intune-user-status-c",
        "--lib",
        "--features",
        "test-seams",
    ]);
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    run("cargo build of the library", &mut build);
    profile.join("libintune_user_status.so")
}

/// The target the nightly AddressSanitizer build names, so build scripts stay uninstrumented.
const ASAN_TARGET: &str = env!("IUS_BUILD_TARGET");

/// Builds the library with AddressSanitizer on the nightly toolchain (`-Zsanitizer=address`),
/// in `target/asan/`, so the sanitizer run checks the Rust code's memory accesses as well as the
/// C programs' (with the test seams, as [`build_library`]); returns the folder holding the `.so` and the `.a`. Without a nightly toolchain
/// one line says so and it returns None (a failure with `IUS_REQUIRE_TOOLS=1`): the C programs
/// are then checked against the plain library.
pub fn build_asan_library() -> Option<PathBuf> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        assert!(
            std::env::var(REQUIRE_TOOLS).as_deref() != Ok("1"),
            "{REQUIRE_TOOLS}=1 but the nightly toolchain is not installed (rustup toolchain install nightly)"
        );
        println!(
            "skipped: the nightly toolchain is not installed (rustup toolchain install nightly); not checked: the Rust library under AddressSanitizer"
        );
        return None;
    }
    let target_dir = root().join("target/asan");
    let mut build = Command::new("rustup");
    build
        .current_dir(root())
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "-p",
            "intune-user-status-c",
            "--lib",
            "--features",
            "test-seams",
        ])
        .args(["--target", ASAN_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-Zsanitizer=address")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    run("the AddressSanitizer build of the library", &mut build);
    Some(target_dir.join(ASAN_TARGET).join("debug"))
}

/// Whether `tool --version` runs.
pub fn tool_found(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require_tool(tool: &str) {
    assert!(
        tool_found(tool),
        "`{tool}` is required by the C API tests but was not found; install it (Debian: apt-get install -y {tool})"
    );
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(what: &str, command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|err| {
        panic!("{what}: could not run {command:?}: {err} (is it installed?)")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The C (or C++) compiler and its base flags, as the `cc` crate picks them for this target (or
/// clang's, for [`Variant::Clang`]).
fn compiler(cpp: bool, variant: Variant) -> cc::Tool {
    let mut build = cc::Build::new();
    if variant == Variant::Clang {
        build.compiler(if cpp { "clang++" } else { "clang" });
    }
    let tool = build
        .cpp(cpp)
        .target(env!("IUS_BUILD_TARGET"))
        .host(env!("IUS_BUILD_HOST"))
        .opt_level(0)
        .debug(true)
        .warnings(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .try_get_compiler()
        .unwrap_or_else(|err| {
            panic!(
                "no C{} compiler found ({err}); install one (Debian: apt-get install -y g++) or set {}",
                if cpp { "++" } else { "" },
                if cpp { "CXX" } else { "CC" }
            )
        });
    assert!(
        !tool.is_like_msvc(),
        "the C tests need a gcc- or clang-like compiler, found {:?}",
        tool.path()
    );
    tool
}

/// One compiled test program, linked one way.
struct TestRun {
    name: String,
    exe: PathBuf,
    argument: String,
    suppressions: Option<&'static str>,
}

/// The compiled programs of one variant, in `target/<profile>/c-tests/<variant>/`.
pub struct Suite {
    variant: Variant,
    dir: PathBuf,
    /// Each test program and build kind.
    tests: Vec<TestRun>,
}

impl Suite {
    /// Builds the library (for [`Variant::Wine`]: finds the one `.ci/windows` built), then
    /// compiles the programs: every one for [`Variant::Plain`], [`Variant::Clang`] and
    /// [`Variant::Wine`], the test programs only for the others.
    pub fn compile(variant: Variant) -> Suite {
        let mut profile = profile_dir();
        let dir = profile.join("c-tests").join(variant.name());
        let lib = dir.join("lib");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&lib).expect("create the build directory");
        if variant != Variant::Wine {
            let mut shared = build_library();
            if variant == Variant::Sanitize
                && let Some(asan) = build_asan_library()
            {
                shared = asan.join("libintune_user_status.so");
                profile = asan;
            }
            stage_symlink_chain(&shared, &lib);
        }

        let c = compiler(false, variant);
        let cpp = compiler(true, variant);
        let mut tests = Vec::new();
        for program in PROGRAMS {
            let all = matches!(variant, Variant::Plain | Variant::Clang | Variant::Wine);
            let kinds: &[&str] = match program.usage {
                Usage::Object | Usage::Build if !all => &[],
                Usage::Object | Usage::Build => &["shared"],
                Usage::Test(_) => &KINDS,
            };
            for kind in kinds {
                let name = program.name(kind);
                let mut command = match variant {
                    Variant::Wine => wine::compiler(program.is_cpp()),
                    _ if program.is_cpp() => cpp.to_command(),
                    _ => c.to_command(),
                };
                command
                    .arg(if program.is_cpp() {
                        "-std=c++17"
                    } else {
                        "-std=c11"
                    })
                    .args(WARNINGS)
                    .arg("-g")
                    // The test helpers use POSIX sockets and threads under strict C11.
                    .arg("-D_POSIX_C_SOURCE=200809L")
                    .arg("-I")
                    .arg(root().join("include"))
                    .arg("-I")
                    .arg(bindings_dir().join("tests"));
                if variant == Variant::Sanitize {
                    command.args(SANITIZE);
                }
                command.arg(bindings_dir().join(program.source));
                let out = match program.usage {
                    Usage::Object => {
                        let out = dir.join(format!("{name}.o"));
                        command.arg("-c");
                        out
                    }
                    Usage::Build | Usage::Test(_) if variant == Variant::Wine => {
                        wine::link_args(&mut command, kind, &dir);
                        dir.join(format!("{name}.exe"))
                    }
                    Usage::Build | Usage::Test(_) => {
                        link_args(&mut command, kind, &lib, &profile);
                        dir.join(&name)
                    }
                };
                command.arg("-o").arg(&out);
                run(&format!("compiling {name}"), &mut command);
                if let Usage::Test(argument) = program.usage {
                    tests.push(TestRun {
                        name,
                        exe: out,
                        argument: argument.replace("{kind}", kind),
                        suppressions: program.suppressions,
                    });
                }
            }
        }
        Suite {
            variant,
            dir,
            tests,
        }
    }

    /// How the programs are built and run.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The executable a [`Program::build`] program of `source` became (linked to the shared
    /// library), to run it as a user would.
    pub fn built(&self, source: &str) -> PathBuf {
        let program = PROGRAMS
            .iter()
            .find(|program| program.source == source)
            .unwrap_or_else(|| panic!("{source} is not in PROGRAMS"));
        self.dir.join(program.name("shared"))
    }

    /// Runs every test program, one at a time, with `env`; panics with a program's output when it
    /// fails or outlives [`TIMEOUT`].
    pub fn run(&self, env: &[(String, String)]) {
        if self.variant == Variant::Valgrind {
            require_tool("valgrind");
        }
        assert!(!self.tests.is_empty(), "no test programs");
        let small_disk = (self.variant == Variant::Wine)
            .then(|| wine::SmallDisk::mount(self.dir.join("small-disk")));
        let mut env = env.to_vec();
        env.extend(small_disk.as_ref().map(wine::SmallDisk::env));
        for TestRun {
            name,
            exe,
            argument,
            suppressions,
        } in &self.tests
        {
            let mut words = match self.variant {
                Variant::Valgrind => valgrind_prefix(*suppressions),
                Variant::Wine => vec![wine::wine()],
                Variant::Plain | Variant::Clang | Variant::Sanitize => Vec::new(),
            };
            words.push(exe.clone().into());
            words.push(argument.into());
            let log_path = self.dir.join(format!("{name}.log"));
            let log = File::create(&log_path).expect("create the log");
            let translate = |value: &str| match self.variant {
                Variant::Wine => wine::translate(value),
                _ => value.to_owned(),
            };
            let mut child = Command::new(&words[0])
                .args(&words[1..])
                .envs(env.iter().map(|(k, v)| (k, translate(v))))
                // What a program cannot do under every variant (test_cpp_wipe's own operator
                // delete is valgrind's there) it leaves out by this; timing bounds are looser
                // under valgrind, which runs one thread at a time.
                .env("IUS_TEST_VARIANT", self.variant.name())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("{name}: could not run {words:?}: {err}"));
            let status = wait_bounded(&mut child);
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            match status {
                Some(status) if status.success() => {}
                Some(status) => panic!(
                    "{name} ({}) failed ({status}):\n{output}",
                    self.variant.name()
                ),
                None => panic!(
                    "{name} ({}) did not finish within {TIMEOUT:?}:\n{output}",
                    self.variant.name()
                ),
            }
        }
    }
}

impl Suite {
    /// How the programs name `path`: as it is, or for [`Variant::Wine`] as the Windows path Wine
    /// maps it to (`C:\...` on the prefix's C: drive, `Z:\...` elsewhere).
    pub fn program_path(&self, path: &Path) -> String {
        let shown = path.display().to_string();
        match self.variant {
            Variant::Wine => wine::translate(&shown),
            _ => shown,
        }
    }

    /// A fresh folder named `name` for the files the programs write: under the system's
    /// temporary folder, or for [`Variant::Wine`] on the Wine prefix's C: drive (the programs
    /// then see a `C:\` path).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        if self.variant == Variant::Wine {
            return wine::temp_dir(name);
        }
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    }
}

/// The child's exit status, or None (and the child killed) after [`TIMEOUT`].
fn wait_bounded(child: &mut std::process::Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a test program") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shared: by name from the staged chain, found at run time through the rpath by its SONAME.
/// Static: the archive and the system libraries the Rust standard library needs.
fn link_args(command: &mut Command, kind: &str, lib: &Path, profile: &Path) {
    if kind == "shared" {
        let mut rpath = OsString::from("-Wl,-rpath,");
        rpath.push(lib);
        command
            .arg("-L")
            .arg(lib)
            .arg("-lintune_user_status")
            .arg(rpath);
    } else {
        command
            .arg(profile.join("libintune_user_status.a"))
            .args(["-ldl", "-lm"]);
    }
    command.arg("-pthread");
}

/// `lib/` as an installation lays it out: `libintune_user_status.so` -> the SONAME ->
/// `libintune_user_status.so.<version>`, which is the library cargo built.
fn stage_symlink_chain(shared: &Path, lib: &Path) {
    let full = concat!("libintune_user_status.so.", env!("CARGO_PKG_VERSION"));
    for (link, target) in [
        (full, shared),
        (SONAME, Path::new(full)),
        ("libintune_user_status.so", Path::new(SONAME)),
    ] {
        std::os::unix::fs::symlink(target, lib.join(link)).expect("stage the library");
    }
}

/// Set by `.ci/run`: a missing optional tool (cmake, nm, readelf) fails its test instead of
/// skipping it.
const REQUIRE_TOOLS: &str = "IUS_REQUIRE_TOOLS";

/// Whether every one of `tools` is installed. When one is not, prints one line saying that
/// `what` was not checked and returns false, or fails with `IUS_REQUIRE_TOOLS=1`; `package` is
/// the Debian package to install.
pub fn optional_tools(tools: &[&str], package: &str, what: &str) -> bool {
    let Some(missing) = tools.iter().find(|tool| !tool_found(tool)) else {
        return true;
    };
    assert!(
        std::env::var(REQUIRE_TOOLS).as_deref() != Ok("1"),
        "{REQUIRE_TOOLS}=1 but {missing} is not installed (Debian: apt-get install -y {package})"
    );
    println!("skipped: {missing} is not installed ({package}); not checked: {what}");
    false
}

/// Configures and builds the CMake project in `bindings-c/` against the cargo-built library,
/// installs it into a stage with `cmake --install` and builds and runs its consumers
/// (`find_package` and pkg-config, shared and static) against the installed copy. Returns the
/// stage, or None when cmake is missing (one line says so; a failure with `IUS_REQUIRE_TOOLS=1`).
pub fn cmake_package() -> Option<PathBuf> {
    if !optional_tools(
        &["cmake", "ctest"],
        "cmake",
        "the CMake package and its consumers",
    ) {
        return None;
    }
    require_tool("pkg-config");
    build_library();
    // The compilers the other C tests use.
    Some(cmake_install_and_consumers(
        "cmake",
        &profile_dir(),
        &[
            // The compilers the other C tests use.
            define("CMAKE_C_COMPILER", compiler(false, Variant::Plain).path()),
            define("CMAKE_CXX_COMPILER", compiler(true, Variant::Plain).path()),
        ],
    ))
}

/// [`cmake_package`]'s work for the library in `lib_dir`, in `target/<profile>/c-tests/<name>`,
/// configured with `defines`; returns the stage.
pub fn cmake_install_and_consumers(name: &str, lib_dir: &Path, defines: &[OsString]) -> PathBuf {
    let dir = profile_dir().join("c-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run(
        "cmake configure",
        Command::new("cmake")
            .arg("-S")
            .arg(bindings_dir())
            .arg("-B")
            .arg(&dir)
            .arg(define("IUS_LIB_DIR", lib_dir))
            .arg(format!(
                "-DIUS_INCLUDE_DIR={}",
                root().join("include").display()
            ))
            .arg(format!("-DIUS_VERSION={}", env!("CARGO_PKG_VERSION")))
            .args(defines),
    );
    run(
        "cmake build",
        Command::new("cmake")
            .arg("--build")
            .arg(&dir)
            .args(["-j", "2"]),
    );
    run(
        "ctest (install and consumers)",
        Command::new("ctest").arg("--test-dir").arg(&dir).args([
            "--output-on-failure",
            "--no-tests=error",
            "--timeout",
            "120",
        ]),
    );
    dir.join("stage")
}

pub fn define(name: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(format!("-D{name}="));
    arg.push(path);
    arg
}
