//! Impairments that change over time: a list of steps, each applying new uplink and downlink
//! settings at an offset from the start (a link that degrades in the middle of a lesson, a
//! cap that lifts, a cut that heals).

use std::time::Duration;

use super::model::LinkSettings;
use super::socket::NetworkImpairment;

/// One step of a [`Schedule`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleStep {
    /// When the step applies, from the start of the schedule.
    pub at: Duration,
    /// The uplink from then on.
    pub up: LinkSettings,
    /// The downlink from then on.
    pub down: LinkSettings,
}

/// Steps applied to a [`NetworkImpairment`] in order of their offsets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    steps: Vec<ScheduleStep>,
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step applying `up` and `down` at `at`.
    pub fn then_at(mut self, at: Duration, up: LinkSettings, down: LinkSettings) -> Self {
        self.steps.push(ScheduleStep { at, up, down });
        self.steps.sort_by_key(|step| step.at);
        self
    }

    /// The steps, earliest first.
    pub fn steps(&self) -> &[ScheduleStep] {
        &self.steps
    }

    /// Applies the steps to `network` as their times come, from now; the returned task ends
    /// after the last one (abort it to stop early). Needs a tokio runtime.
    pub fn run(self, network: NetworkImpairment) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for step in self.steps {
                tokio::time::sleep_until(start + step.at).await;
                network.set_up(step.up);
                network.set_down(step.down);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(loss: f64) -> LinkSettings {
        LinkSettings {
            loss,
            ..LinkSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn steps_apply_in_order_at_their_times() {
        let network = NetworkImpairment::default();
        let schedule = Schedule::new()
            .then_at(Duration::from_secs(5), lossy(0.0), lossy(0.0))
            .then_at(Duration::from_secs(2), lossy(0.3), lossy(0.1));
        assert_eq!(schedule.steps()[0].at, Duration::from_secs(2));
        let task = schedule.run(network.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(network.settings().0.loss, 0.0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(network.settings(), (lossy(0.3), lossy(0.1)));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(network.settings().0.loss, 0.0);
        task.await.unwrap();
    }
}
