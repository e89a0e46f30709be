//! Unit monitor types (DESIGN.md section 2 table), as state machines.
//!
//! A [`Detector`] is built from a monitor's [`Detection`] (its parameters already resolved for
//! one instance, overrides applied) and fed what its data source produces:
//! - perf samples ([`Detector::sample`]) for the threshold types;
//! - data items ([`Detector::item`]) for the event types, service state and expressions;
//! - time ([`Detector::tick`]) for the timer reset and the heartbeat;
//! - an operator reset ([`Detector::reset`]).
//!
//! Each call returns the state the monitor is in afterwards when the input decided one,
//! `None` when it did not (not enough samples yet, an item no state matches). Comparisons:
//! "beyond" a threshold is strictly greater (direction above) or strictly less (below).
//! Event-driven types start healthy (they have no data until something goes wrong);
//! sample-driven types start uninitialized.

use std::collections::VecDeque;
use std::sync::Arc;

use healthstream_model::expr::{Path, Subject, Value};
use healthstream_model::pack::{Detection, Direction, Health};

/// What a detector keeps between inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Memory {
    None,
    /// The last samples (average, delta).
    Window(VecDeque<f64>),
    /// Consecutive samples: length of the current run and whether it is beyond.
    Run {
        beyond: bool,
        length: u32,
    },
    /// Timer reset: when the last bad event came (ms).
    LastBad(i64),
    /// Heartbeat: when the last heartbeat came (ms) and the expected interval (ms).
    Heartbeat {
        last: i64,
        interval: i64,
    },
    /// Basic service: the last running and automatic-start readings.
    Service {
        running: Option<bool>,
        automatic: Option<bool>,
    },
}

impl Memory {
    /// A read of what is kept (the first value of a window, which is elsewhere in memory),
    /// to bring it into cache (see `Slots::touch`).
    pub(crate) fn probe(&self) -> u64 {
        match self {
            Memory::Window(w) => w.front().map_or(0, |v| v.to_bits()),
            _ => 0,
        }
    }
}

/// A monitor type with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    /// Shared by the copies of a monitor with the same resolved configuration (read for
    /// every sample: one copy of it stays in cache for all of them).
    pub detection: Arc<Detection>,
    pub health: Health,
    pub memory: Memory,
}

fn beyond(direction: Direction, value: f64, threshold: f64) -> bool {
    match direction {
        Direction::Above => value > threshold,
        Direction::Below => value < threshold,
    }
}

/// A service-state reading: `Service/Running` or `Service/Automatic`, 1 or 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ServiceReading {
    Running(bool),
    Automatic(bool),
}

/// The state and memory a detector starts in.
fn initial(detection: &Detection) -> (Health, Memory) {
    match detection {
        Detection::EventReset { .. } | Detection::ManualReset { .. } => {
            (Health::Healthy, Memory::None)
        }
        Detection::TimerReset { .. } => (Health::Healthy, Memory::LastBad(i64::MIN)),
        Detection::AverageThreshold { .. } | Detection::DeltaThreshold { .. } => {
            (Health::Uninitialized, Memory::Window(VecDeque::new()))
        }
        Detection::ConsecutiveSamples { .. } => (
            Health::Uninitialized,
            Memory::Run {
                beyond: false,
                length: 0,
            },
        ),
        Detection::BasicService { .. } => (
            Health::Uninitialized,
            Memory::Service {
                running: None,
                automatic: None,
            },
        ),
        Detection::Heartbeat { .. } => (
            Health::Uninitialized,
            Memory::Heartbeat {
                last: i64::MIN,
                interval: 60_000,
            },
        ),
        _ => (Health::Uninitialized, Memory::None),
    }
}

impl Detector {
    /// A fresh detector in its initial state.
    pub fn new(detection: impl Into<Arc<Detection>>) -> Detector {
        let detection = detection.into();
        let (health, memory) = initial(&detection);
        Detector {
            detection,
            health,
            memory,
        }
    }

    /// Whether it is as [`Detector::new`] makes it (nothing to keep).
    pub fn is_initial(&self) -> bool {
        let (health, memory) = initial(&self.detection);
        health == self.health && memory == self.memory
    }

    fn set(&mut self, h: Health) -> Option<Health> {
        self.health = h;
        Some(h)
    }

    /// A perf sample (threshold types). Other types ignore it.
    pub fn sample(&mut self, value: f64) -> Option<Health> {
        if !value.is_finite() {
            return None;
        }
        // The arms take only plain fields (copied out): no clone of the configuration per
        // sample.
        match *self.detection {
            Detection::SimpleThreshold {
                direction,
                threshold,
                warning,
                critical,
                unhealthy,
            } => {
                let h = match (threshold, warning, critical) {
                    (Some(t), _, _) => {
                        if beyond(direction, value, t) {
                            unhealthy
                        } else {
                            Health::Healthy
                        }
                    }
                    (None, Some(w), Some(c)) => {
                        if beyond(direction, value, c) {
                            Health::Critical
                        } else if beyond(direction, value, w) {
                            Health::Warning
                        } else {
                            Health::Healthy
                        }
                    }
                    _ => return None,
                };
                self.set(h)
            }
            Detection::DoubleThreshold {
                low,
                high,
                below,
                between,
                above,
            } => {
                let h = if value < low {
                    below
                } else if value > high {
                    above
                } else {
                    between
                };
                self.set(h)
            }
            Detection::AverageThreshold {
                direction,
                threshold,
                samples,
                unhealthy,
            } => {
                let Memory::Window(w) = &mut self.memory else {
                    return None;
                };
                w.push_back(value);
                while w.len() > samples as usize {
                    w.pop_front();
                }
                if w.len() < samples as usize {
                    return None;
                }
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                let h = if beyond(direction, mean, threshold) {
                    unhealthy
                } else {
                    Health::Healthy
                };
                self.set(h)
            }
            Detection::ConsecutiveSamples {
                direction,
                threshold,
                samples,
                unhealthy,
            } => {
                let Memory::Run {
                    beyond: run_beyond,
                    length,
                } = &mut self.memory
                else {
                    return None;
                };
                let b = beyond(direction, value, threshold);
                if b == *run_beyond {
                    // Counted up to the run it takes: longer runs decide the same, and the
                    // kept state stops changing once the run is complete.
                    *length = length.saturating_add(1).min(samples.max(1));
                } else {
                    *run_beyond = b;
                    *length = 1;
                }
                if *length >= samples {
                    let h = if b { unhealthy } else { Health::Healthy };
                    return self.set(h);
                }
                // Not a full run yet: the state stands.
                (self.health != Health::Uninitialized).then_some(self.health)
            }
            Detection::DeltaThreshold {
                direction,
                threshold,
                samples,
                unhealthy,
            } => {
                let Memory::Window(w) = &mut self.memory else {
                    return None;
                };
                w.push_back(value);
                while w.len() > samples as usize + 1 {
                    w.pop_front();
                }
                if w.len() < samples as usize + 1 {
                    return None;
                }
                let delta = value - w[0];
                let h = if beyond(direction, delta, threshold) {
                    unhealthy
                } else {
                    Health::Healthy
                };
                self.set(h)
            }
            _ => None,
        }
    }

    /// A data item: an event, a property bag, a service reading, a perf sample seen as an
    /// item. `at` is its time (ms).
    pub fn item(&mut self, item: &dyn Subject, at: i64) -> Option<Health> {
        match (*self.detection).clone() {
            Detection::EventReset {
                unhealthy_when,
                healthy_when,
                unhealthy,
            } => {
                if unhealthy_when.eval(item) {
                    self.set(unhealthy)
                } else if healthy_when.eval(item) {
                    self.set(Health::Healthy)
                } else {
                    None
                }
            }
            Detection::ManualReset {
                unhealthy_when,
                unhealthy,
            } => unhealthy_when.eval(item).then(|| {
                self.health = unhealthy;
                unhealthy
            }),
            Detection::TimerReset {
                unhealthy_when,
                unhealthy,
                ..
            } => {
                if unhealthy_when.eval(item) {
                    self.memory = Memory::LastBad(at);
                    self.set(unhealthy)
                } else {
                    None
                }
            }
            Detection::Expression { states } => {
                let hit = states
                    .iter()
                    .find(|s| s.when.eval(item))
                    .map(|s| s.health)?;
                self.set(hit)
            }
            _ => None,
        }
    }

    /// A service-state reading (basic service monitors).
    pub fn service(&mut self, reading: ServiceReading) -> Option<Health> {
        let Detection::BasicService {
            check_start_mode,
            unhealthy,
        } = *self.detection
        else {
            return None;
        };
        let Memory::Service { running, automatic } = &mut self.memory else {
            return None;
        };
        match reading {
            ServiceReading::Running(r) => *running = Some(r),
            ServiceReading::Automatic(a) => *automatic = Some(a),
        }
        let running = (*running)?;
        let ok = running && (!check_start_mode || automatic.unwrap_or(true));
        self.set(if ok { Health::Healthy } else { unhealthy })
    }

    /// A heartbeat at `at` (ms) with its interval (s).
    pub fn heartbeat(&mut self, at: i64, interval_seconds: i32) -> Option<Health> {
        if !matches!(*self.detection, Detection::Heartbeat { .. }) {
            return None;
        }
        self.memory = Memory::Heartbeat {
            last: at,
            interval: i64::from(interval_seconds.max(1)) * 1000,
        };
        self.set(Health::Healthy)
    }

    /// Time passed: the timer reset and the heartbeat decide on time alone.
    pub fn tick(&mut self, now: i64) -> Option<Health> {
        let target = self.tick_target(now)?;
        self.set(target)
    }

    /// The state [`Detector::tick`] at `now` would set, if it would set one.
    pub fn tick_target(&self, now: i64) -> Option<Health> {
        match (&*self.detection, &self.memory) {
            (Detection::TimerReset { after, .. }, Memory::LastBad(last)) => {
                let wait = i64::try_from(after.0.as_millis()).unwrap_or(i64::MAX);
                (self.health != Health::Healthy
                    && *last != i64::MIN
                    && now.saturating_sub(*last) >= wait)
                    .then_some(Health::Healthy)
            }
            (Detection::Heartbeat { missed }, Memory::Heartbeat { last, interval }) => {
                let silent = now.saturating_sub(*last) >= i64::from(*missed) * interval;
                (*last != i64::MIN && silent && self.health != Health::Critical)
                    .then_some(Health::Critical)
            }
            _ => None,
        }
    }

    /// An operator reset: back to healthy (manual reset monitors are only healthy this way);
    /// sample windows start again.
    pub fn reset(&mut self) -> Health {
        let fresh = Detector::new(self.detection.clone());
        self.memory = fresh.memory;
        self.health = Health::Healthy;
        Health::Healthy
    }

    /// The type can decide again from what it keeps (recalculate): the window types and the
    /// service type recompute; the others keep their state.
    pub fn recalculate(&mut self) -> Health {
        if let (
            Detection::AverageThreshold {
                direction,
                threshold,
                samples,
                unhealthy,
            },
            Memory::Window(w),
        ) = (&*self.detection, &self.memory)
        {
            if w.len() >= *samples as usize {
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                self.health = if beyond(*direction, mean, *threshold) {
                    *unhealthy
                } else {
                    Health::Healthy
                };
            }
        }
        self.health
    }
}

/// A data item made of named values (an event's fields, a property bag).
pub struct Fields<'a>(pub &'a [(&'a str, Value<'a>)]);

impl Subject for Fields<'_> {
    fn lookup(&self, path: &Path) -> Option<Value<'_>> {
        let name = path.simple_name().map(str::to_string).or_else(|| {
            // Property[@Name="x"] reads the bag's field x.
            match path.0.as_slice() {
                [seg] if seg.name == "Property" => match &seg.index {
                    Some(healthstream_model::expr::Index::Attribute { value, .. }) => {
                        Some(value.clone())
                    }
                    _ => None,
                },
                _ => None,
            }
        })?;
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_model::expr::Expr;
    use healthstream_model::pack::{Interval, StateCondition};
    use Health::*;

    fn feed(d: &mut Detector, values: &[f64]) -> Vec<Option<Health>> {
        values.iter().map(|v| d.sample(*v)).collect()
    }

    #[test]
    fn simple_threshold_two_and_three_states() {
        let mut two = Detector::new(Detection::SimpleThreshold {
            direction: Direction::Above,
            threshold: Some(90.0),
            warning: None,
            critical: None,
            unhealthy: Warning,
        });
        assert_eq!(two.health, Uninitialized);
        assert_eq!(
            feed(&mut two, &[50.0, 90.0, 90.1, 10.0]),
            [Some(Healthy), Some(Healthy), Some(Warning), Some(Healthy)]
        );
        let mut three = Detector::new(Detection::SimpleThreshold {
            direction: Direction::Below,
            threshold: None,
            warning: Some(10.0),
            critical: Some(5.0),
            unhealthy: Critical,
        });
        assert_eq!(
            feed(&mut three, &[50.0, 9.0, 4.0, 10.0, 5.0]),
            [
                Some(Healthy),
                Some(Warning),
                Some(Critical),
                Some(Healthy),
                Some(Warning)
            ]
        );
        assert_eq!(three.sample(f64::NAN), None, "no decision on a non-number");
    }

    #[test]
    fn double_threshold_regions() {
        let mut d = Detector::new(Detection::DoubleThreshold {
            low: 20.0,
            high: 40.0,
            below: Healthy,
            between: Warning,
            above: Critical,
        });
        assert_eq!(
            feed(&mut d, &[5.0, 20.0, 40.0, 40.5, 19.9]),
            [
                Some(Healthy),
                Some(Warning),
                Some(Warning),
                Some(Critical),
                Some(Healthy)
            ]
        );
    }

    #[test]
    fn average_threshold_needs_n_samples() {
        let mut d = Detector::new(Detection::AverageThreshold {
            direction: Direction::Below,
            threshold: 5.0,
            samples: 3,
            unhealthy: Critical,
        });
        assert_eq!(
            feed(&mut d, &[1.0, 1.0]),
            [None, None],
            "no state before 3 samples"
        );
        assert_eq!(d.health, Uninitialized);
        assert_eq!(d.sample(1.0), Some(Critical));
        // Mean of (1, 1, 20) = 7.33: healthy.
        assert_eq!(d.sample(20.0), Some(Healthy));
        assert_eq!(d.sample(1.0), Some(Healthy), "mean of (1, 20, 1) = 7.33");
        assert_eq!(d.sample(1.0), Some(Healthy), "mean of (20, 1, 1) = 7.33");
        assert_eq!(d.sample(1.0), Some(Critical), "mean of (1, 1, 1) = 1");
    }

    #[test]
    fn consecutive_samples_need_a_full_run_both_ways() {
        let mut d = Detector::new(Detection::ConsecutiveSamples {
            direction: Direction::Above,
            threshold: 95.0,
            samples: 3,
            unhealthy: Critical,
        });
        assert_eq!(feed(&mut d, &[99.0, 99.0]), [None, None]);
        assert_eq!(d.sample(99.0), Some(Critical), "third beyond in a row");
        assert_eq!(
            feed(&mut d, &[10.0, 10.0]),
            [Some(Critical), Some(Critical)],
            "still critical: the healthy run is short"
        );
        assert_eq!(d.sample(99.0), Some(Critical));
        assert_eq!(
            feed(&mut d, &[10.0, 10.0, 10.0]),
            [Some(Critical), Some(Critical), Some(Healthy)]
        );
        // A fresh monitor with good samples becomes healthy after a full run too.
        let mut fresh = Detector::new(Detection::ConsecutiveSamples {
            direction: Direction::Above,
            threshold: 95.0,
            samples: 2,
            unhealthy: Warning,
        });
        assert_eq!(feed(&mut fresh, &[1.0, 1.0]), [None, Some(Healthy)]);
    }

    #[test]
    fn delta_threshold_compares_with_n_samples_earlier() {
        let mut d = Detector::new(Detection::DeltaThreshold {
            direction: Direction::Below,
            threshold: -10.0,
            samples: 2,
            unhealthy: Warning,
        });
        assert_eq!(feed(&mut d, &[80.0, 75.0]), [None, None]);
        assert_eq!(d.sample(71.0), Some(Healthy), "71 - 80 = -9");
        assert_eq!(d.sample(60.0), Some(Warning), "60 - 75 = -15");
        assert_eq!(d.sample(58.0), Some(Warning), "58 - 71 = -13");
        assert_eq!(d.sample(59.0), Some(Healthy), "59 - 60 = -1");
    }

    fn ev(id: i64) -> Vec<(&'static str, Value<'static>)> {
        vec![
            ("EventId", Value::Number(id as f64)),
            ("Source", Value::text("disk")),
        ]
    }

    #[test]
    fn event_reset() {
        let mut d = Detector::new(Detection::EventReset {
            unhealthy_when: Expr::parse("EventId == 7").expect("expr"),
            healthy_when: Expr::parse("EventId == 8").expect("expr"),
            unhealthy: Critical,
        });
        assert_eq!(d.health, Healthy);
        assert_eq!(d.item(&Fields(&ev(1)), 0), None);
        assert_eq!(d.item(&Fields(&ev(7)), 0), Some(Critical));
        assert_eq!(d.item(&Fields(&ev(7)), 0), Some(Critical));
        assert_eq!(d.item(&Fields(&ev(8)), 0), Some(Healthy));
    }

    #[test]
    fn manual_reset_only_by_an_operator() {
        let mut d = Detector::new(Detection::ManualReset {
            unhealthy_when: Expr::parse("EventId == 7").expect("expr"),
            unhealthy: Warning,
        });
        assert_eq!(d.item(&Fields(&ev(7)), 0), Some(Warning));
        assert_eq!(
            d.item(&Fields(&ev(8)), 0),
            None,
            "no event makes it healthy"
        );
        assert_eq!(d.tick(i64::MAX / 2), None, "nor does time");
        assert_eq!(d.reset(), Healthy);
        assert_eq!(d.health, Healthy);
    }

    #[test]
    fn timer_reset_after_the_last_bad_event() {
        let mut d = Detector::new(Detection::TimerReset {
            unhealthy_when: Expr::parse("EventId == 7").expect("expr"),
            after: Interval::secs(60),
            unhealthy: Critical,
        });
        assert_eq!(d.tick(1_000_000), None, "healthy, nothing to time");
        assert_eq!(d.item(&Fields(&ev(7)), 1_000), Some(Critical));
        assert_eq!(
            d.item(&Fields(&ev(7)), 31_000),
            Some(Critical),
            "the timer starts again"
        );
        assert_eq!(
            d.tick(61_000),
            None,
            "60 s after the first, 30 s after the last"
        );
        assert_eq!(d.tick(91_000), Some(Healthy));
        assert_eq!(d.tick(200_000), None);
    }

    #[test]
    fn basic_service() {
        let mut d = Detector::new(Detection::BasicService {
            check_start_mode: true,
            unhealthy: Critical,
        });
        assert_eq!(
            d.service(ServiceReading::Automatic(true)),
            None,
            "running not known yet"
        );
        assert_eq!(d.service(ServiceReading::Running(true)), Some(Healthy));
        assert_eq!(d.service(ServiceReading::Running(false)), Some(Critical));
        assert_eq!(d.service(ServiceReading::Running(true)), Some(Healthy));
        assert_eq!(
            d.service(ServiceReading::Automatic(false)),
            Some(Critical),
            "set to start by hand"
        );
        let mut lax = Detector::new(Detection::BasicService {
            check_start_mode: false,
            unhealthy: Warning,
        });
        lax.service(ServiceReading::Automatic(false));
        assert_eq!(
            lax.service(ServiceReading::Running(true)),
            Some(Healthy),
            "start mode not checked"
        );
    }

    #[test]
    fn expression_first_match_wins_and_no_match_changes_nothing() {
        let when = |s: &str| Expr::parse(s).expect("expr");
        let mut d = Detector::new(Detection::Expression {
            states: vec![
                StateCondition {
                    health: Healthy,
                    when: when(r#"Property[@Name="state"] == "running""#),
                },
                StateCondition {
                    health: Warning,
                    when: when(r#"Property[@Name="state"] == "degraded""#),
                },
                StateCondition {
                    health: Critical,
                    when: when(r#"Property[@Name="state"] like "*""#),
                },
            ],
        });
        let bag = |v: &'static str| vec![("state", Value::text(v))];
        assert_eq!(d.item(&Fields(&bag("running")), 0), Some(Healthy));
        assert_eq!(d.item(&Fields(&bag("degraded")), 0), Some(Warning));
        assert_eq!(
            d.item(&Fields(&bag("maintenance")), 0),
            Some(Critical),
            "the catch-all"
        );
        assert_eq!(
            d.item(&Fields(&[]), 0),
            None,
            "no state matches an empty bag"
        );
        assert_eq!(d.health, Critical);
    }

    #[test]
    fn heartbeat_misses() {
        let mut d = Detector::new(Detection::Heartbeat { missed: 4 });
        assert_eq!(
            d.tick(1_000_000),
            None,
            "no heartbeat ever: nothing to decide"
        );
        assert_eq!(d.heartbeat(0, 60), Some(Healthy));
        assert_eq!(d.tick(239_999), None);
        assert_eq!(
            d.tick(240_000),
            Some(Critical),
            "four intervals without a heartbeat"
        );
        assert_eq!(d.tick(300_000), None, "already critical");
        assert_eq!(d.heartbeat(301_000, 60), Some(Healthy));
    }

    #[test]
    fn reset_and_recalculate() {
        let mut d = Detector::new(Detection::AverageThreshold {
            direction: Direction::Above,
            threshold: 10.0,
            samples: 2,
            unhealthy: Critical,
        });
        feed(&mut d, &[20.0, 20.0]);
        assert_eq!(d.health, Critical);
        assert_eq!(d.recalculate(), Critical, "the window still says so");
        assert_eq!(d.reset(), Healthy);
        assert_eq!(d.sample(20.0), None, "the window starts again");
    }
}
