//! C programs use the C ABI, compiled with the system C compiler against `include/aula.h` and
//! `libaula`, against an in-process server: a call (`tests/c/call.c`), the whiteboard
//! (`tests/c/board.c`) and a class with a lobby, the stage, chat, a denial and a removal
//! (`tests/c/classroom.c`). Under valgrind when it is installed, failing on memory errors and
//! definite leaks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role, RoomMode, RoomSettings};
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

/// A token for a room that runs as a class with a lobby (the token's `classroom` claim
/// configures the room it opens).
fn class_token(identity: &str, role: Role) -> String {
    let mut claims = Claims::new(DEV_API_KEY, "c-class", identity, role, unix_now(), 600);
    claims.classroom = Some(RoomSettings {
        mode: RoomMode::Class,
        lobby: true,
        ..RoomSettings::default()
    });
    claims.sign(DEV_API_SECRET).expect("dev claims sign")
}

/// Compiles tests/c/NAME.c into a temporary directory.
fn build_program(name: &str) -> PathBuf {
    let out_dir = std::env::temp_dir().join(format!("aula-c-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let program = out_dir.join(name);
    let lib_dir = library_dir();
    assert!(
        lib_dir.join("libaula.so").exists(),
        "libaula.so not found in {}",
        lib_dir.display()
    );
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg(format!("-I{}", crate_dir().join("include").display()))
        .arg(crate_dir().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&program)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-laula")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lpthread")
        .status()
        .expect("cc runs");
    assert!(status.success(), "{name}.c compiles against aula.h");
    program
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A command running `program`: under valgrind when it is installed, failing (exit code 99)
/// on memory errors and definite leaks.
fn checked_command(program: &Path, valgrind: bool) -> Command {
    let mut c = if valgrind {
        Command::new("valgrind")
    } else {
        eprintln!("valgrind not installed: running the C program without it");
        Command::new(program)
    };
    // `cargo test` puts target/<profile> on the loader path ahead of the program's rpath;
    // that copy of the library can be older than the one built for this test.
    c.env("LD_LIBRARY_PATH", library_dir());
    if !valgrind {
        return c;
    }
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
    .arg(program);
    c
}

/// Held while a C program runs. Under valgrind each is slow (valgrind runs one thread at a
/// time), and several at once on a small, busy machine miss the 10 s a request waits for the
/// server's reply; one at a time, each keeps its pace.
static ONE_PROGRAM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `command`, printing its output; fails the test unless it succeeded and said "ok".
fn assert_succeeds(mut command: Command) {
    let output = {
        let _turn = ONE_PROGRAM_AT_A_TIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        command.output().expect("the C program runs")
    };
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
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_c_program_joins_receives_stamped_frames_and_shuts_down_cleanly() {
    let program = build_program("call");
    let runtime = runtime();
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
    // Under valgrind everything runs some thirty times slower: ask for fewer frames, allow
    // more time.
    let (min_frames, timeout) = if valgrind { ("5", "120") } else { ("20", "30") };
    let mut command = checked_command(&program, valgrind);
    command.args(&args).args([min_frames, timeout]);
    assert_succeeds(command);
    runtime.block_on(server.shutdown());
}

#[test]
fn a_c_program_draws_on_the_whiteboard_and_reads_it_back_from_the_other_side() {
    let program = build_program("board");
    let runtime = runtime();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let valgrind = valgrind_available();
    let mut command = checked_command(&program, valgrind);
    command
        .arg(server.ws_url())
        // A student's token carries no whiteboard_write grant: its edits are refused.
        .args([
            token("teacher", Role::Teacher),
            token("student", Role::Student),
        ])
        .arg(if valgrind { "120" } else { "20" })
        // What PNG export should do: render, or fail as unsupported without the feature.
        .arg(if cfg!(feature = "png") {
            "png"
        } else {
            "no-png"
        });
    assert_succeeds(command);
    runtime.block_on(server.shutdown());
}

#[test]
fn a_c_program_runs_a_class_lobby_stage_chat_and_removal() {
    let program = build_program("classroom");
    let runtime = runtime();
    let server = runtime
        .block_on(Server::start(ServerConfig::dev(0, 0)))
        .unwrap();
    let valgrind = valgrind_available();
    let mut command = checked_command(&program, valgrind);
    command
        .arg(server.ws_url())
        .args([
            class_token("teacher", Role::Teacher),
            class_token("student", Role::Student),
            class_token("latecomer", Role::Student),
        ])
        .arg(if valgrind { "120" } else { "20" });
    assert_succeeds(command);
    runtime.block_on(server.shutdown());
}
