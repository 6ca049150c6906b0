//! A C program joins through the C ABI, compiled with the system C compiler against
//! `include/aula.h` and `libaula`, against an in-process server; under valgrind when it is
//! installed, failing on memory errors and definite leaks.

use std::path::PathBuf;
use std::process::Command;

use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding `libaula.so`: next to this test binary (`target/<profile>/deps`,
/// where `cargo test` builds it), or the profile directory (where `cargo build` puts it).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let deps = exe.parent().expect("deps directory").to_path_buf();
    if deps.join("libaula.so").exists() {
        return deps;
    }
    deps.parent().expect("profile directory").to_path_buf()
}

fn token(identity: &str, role: Role) -> String {
    Claims::new(DEV_API_KEY, "c-room", identity, role, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .expect("dev claims sign")
}

/// Compiles tests/c/call.c into a temporary directory.
fn build_program() -> PathBuf {
    let out_dir = std::env::temp_dir().join(format!("aula-c-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let program = out_dir.join("call");
    let lib_dir = library_dir();
    assert!(
        lib_dir.join("libaula.so").exists(),
        "libaula.so not found in {}",
        lib_dir.display()
    );
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg(format!("-I{}", crate_dir().join("include").display()))
        .arg(crate_dir().join("tests/c/call.c"))
        .arg("-o")
        .arg(&program)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-laula")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lpthread")
        .status()
        .expect("cc runs");
    assert!(status.success(), "the C program compiles against aula.h");
    program
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_c_program_joins_receives_stamped_frames_and_shuts_down_cleanly() {
    let program = build_program();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let args = [
        server.ws_url(),
        token("teacher", Role::Teacher),
        token("student", Role::Student),
        Claims::new(
            DEV_API_KEY,
            "c-room",
            "forger",
            Role::Teacher,
            unix_now(),
            600,
        )
        .sign("not-the-server-secret")
        .unwrap(),
    ];
    let valgrind = valgrind_available();
    let mut command = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            &format!(
                "--suppressions={}",
                crate_dir().join("tests/c/valgrind.supp").display()
            ),
            // Rust's std and tokio keep a few process-lifetime allocations; only definite
            // leaks and invalid accesses fail the run.
            "--fair-sched=yes",
        ])
        .arg(&program);
        c
    } else {
        eprintln!("valgrind not installed: running the C program without it");
        Command::new(&program)
    };
    // Under valgrind everything runs some thirty times slower: ask for fewer frames, allow
    // more time.
    let (min_frames, timeout) = if valgrind { ("5", "120") } else { ("20", "30") };
    let output = command
        .args(&args)
        .args([min_frames, timeout])
        .output()
        .expect("the C program runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the C program failed ({:?}){}:\n{stderr}",
        output.status.code(),
        if output.status.code() == Some(99) {
            " with valgrind errors"
        } else {
            ""
        }
    );
    assert!(stdout.contains("ok"), "{stdout}");
    runtime.block_on(server.shutdown());
}
