//! `aula-bench`: scenario benchmarks that run a server and clients on loopback (in one process,
//! or against a real `aula-server` process where the server itself is measured).

mod adapt;
mod attack;
mod camera_format;
mod churn;
mod classroom;
mod cpu;
mod e2e;
mod harness;
mod loss;
mod memory;
mod mixed;
mod plot;
mod reconnect;
#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
mod screen;
mod server_process;
mod soak;
mod starvation;
mod whiteboard;

use clap::{Parser, Subcommand};

/// Aula benchmarks.
#[derive(Parser, Debug)]
#[command(name = "aula-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N participants publish synthetic video and audio; every receiver's join time, latency and
    /// frame rate.
    E2e(e2e::E2eArgs),
    /// One cell of the loss table: 1 publisher, 2 subscribers, loss and delay on every path.
    Loss(loss::LossArgs),
    /// Every cell of the loss table (loss 0-40 % x RTT 50 and 150 ms).
    LossTable(loss::LossArgs),
    /// Two subscribers on different downlinks (5 Mbit/s and 500 kbit/s) watching one 720p
    /// publisher: the layer, frame rate and latency each gets.
    Mixed(mixed::MixedArgs),
    /// Server memory per idle participant and per forwarded stream (runs the aula-server binary).
    Memory(memory::MemoryArgs),
    /// A subscriber's media path cut for a few seconds: time until its picture is live again.
    Reconnect(reconnect::ReconnectArgs),
    /// Time from join to a 720p picture at the subscriber on a capped uplink, and the estimate
    /// over time.
    Ramp(adapt::RampArgs),
    /// The publisher's uplink stepped down and back up: time to adapt, latency during the step.
    Step(adapt::StepArgs),
    /// Whiteboard: edit-to-remote-visible latency, join time on a large board, bytes per stroke.
    Whiteboard(whiteboard::WhiteboardArgs),
    /// Screen share on the sender: capture, encode and capture-to-encoded time per frame, and
    /// CPU use, on a changing slide (an Xvfb this starts, or `--display`).
    #[cfg(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    Screen(screen::ScreenArgs),
    /// A class of 30 on loopback: a teacher's action to the student's event (admit, invite,
    /// accept, mute, move to audience), stage-up to everyone decoding, chat to everyone, and a
    /// late joiner's history of 10 000 messages.
    Classroom(classroom::ClassroomArgs),
    /// A camera frame from the driver's buffer to an encoded picture, per pixel format (YUYV,
    /// NV12, MJPEG).
    CameraFormat(camera_format::CameraFormatArgs),
    /// Classes joining, publishing, drawing, chatting, leaving and rejoining for many minutes
    /// against one aula-server process: its memory, CPU, open files, threads and tasks over
    /// time (JSON and a PNG plot), and starved receivers.
    Soak(soak::SoakArgs),
    /// Thousands of joins and leaves in a row (some abrupt) against one aula-server process:
    /// its memory, tasks, open files and threads before and after.
    Churn(churn::ChurnArgs),
    /// An attack on a running `aula-server` binary (sync-request flood, presence spam,
    /// half-open connections) and the figure that shows whether it holds.
    Attack(attack::AttackArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AULA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.scenario {
        Scenario::E2e(args) => runtime.block_on(e2e::run(args)),
        Scenario::Loss(args) => runtime.block_on(loss::run(args)),
        Scenario::LossTable(args) => runtime.block_on(loss::run_table(args)),
        Scenario::Whiteboard(args) => runtime.block_on(whiteboard::run(args)),
        Scenario::Ramp(args) => runtime.block_on(adapt::run_ramp(args)),
        Scenario::Step(args) => runtime.block_on(adapt::run_step(args)),
        Scenario::Memory(args) => runtime.block_on(memory::run(args)),
        Scenario::Mixed(args) => runtime.block_on(mixed::run(args)),
        Scenario::Reconnect(args) => runtime.block_on(reconnect::run(args)),
        #[cfg(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        ))]
        Scenario::Screen(args) => runtime.block_on(screen::run(args)),
        Scenario::Classroom(args) => runtime.block_on(classroom::run(args)),
        Scenario::CameraFormat(args) => camera_format::run(args),
        Scenario::Soak(args) => runtime.block_on(soak::run(args)),
        Scenario::Churn(args) => runtime.block_on(churn::run(args)),
        Scenario::Attack(args) => runtime.block_on(attack::run(args)),
    }
}
