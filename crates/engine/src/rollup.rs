//! Rollups (DESIGN.md section 4).
//!
//! - WorstOf: the worst child; BestOf: the best child.
//! - Percentage(N): the worst state among the healthiest N% of members (rounded up), so with
//!   N = 60 the monitor turns critical once more than 40% of members are critical.
//! - Uninitialized children never make a parent unhealthy: they are left out; with no
//!   initialized child the parent is uninitialized.
//! - Dependency members in maintenance or unavailable count as the monitor says
//!   (uninitialized: left out).

use healthstream_model::pack::{Algorithm, DependencyAlgorithm, Health};

/// A dependency member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub health: Health,
    pub in_maintenance: bool,
    pub unavailable: bool,
}

fn initialized(hs: &[Health]) -> impl Iterator<Item = Health> + '_ {
    hs.iter().copied().filter(|h| *h != Health::Uninitialized)
}

/// WorstOf.
pub fn worst_of(children: &[Health]) -> Health {
    initialized(children).max().unwrap_or(Health::Uninitialized)
}

/// BestOf.
pub fn best_of(children: &[Health]) -> Health {
    initialized(children).min().unwrap_or(Health::Uninitialized)
}

/// Percentage(N), N in 1..=100, member by member: the definition [`dependency_counts`]
/// decides from counts (the tests hold them equal).
#[cfg(test)]
pub fn percentage(members: &[Health], n: u8) -> Health {
    let mut hs: Vec<Health> = initialized(members).collect();
    if hs.is_empty() {
        return Health::Uninitialized;
    }
    hs.sort();
    let take = (hs.len() * usize::from(n.clamp(1, 100)))
        .div_ceil(100)
        .max(1);
    hs[take - 1]
}

/// Members counted by the state they count as (index: `Health as usize`).
pub type Counts = [u32; 4];

/// A dependency monitor's state from its members counted by the state each counts as (after
/// maintenance and unavailability are mapped): the same as [`dependency`] over them, in
/// constant time, so a container of thousands of members costs the same per change as one
/// of ten.
pub fn dependency_counts(
    algorithm: DependencyAlgorithm,
    percent: Option<u8>,
    counts: &Counts,
) -> Health {
    const STATES: [Health; 3] = [Health::Healthy, Health::Warning, Health::Critical];
    let present = |h: &&Health| counts[**h as usize] > 0;
    match algorithm {
        DependencyAlgorithm::WorstOf => STATES.iter().rev().find(present).copied(),
        DependencyAlgorithm::BestOf => STATES.iter().find(present).copied(),
        DependencyAlgorithm::Percentage => {
            let n: usize = STATES.iter().map(|h| counts[*h as usize] as usize).sum();
            let take = (n * usize::from(percent.unwrap_or(100).clamp(1, 100)))
                .div_ceil(100)
                .max(1);
            let mut seen = 0;
            STATES
                .iter()
                .find(|h| {
                    seen += counts[**h as usize] as usize;
                    seen >= take
                })
                .copied()
        }
    }
    .unwrap_or(Health::Uninitialized)
}

/// The state a member counts as in a dependency monitor: its own, unless it is in
/// maintenance or unavailable and the monitor says how those count.
pub fn counted_as(m: &Member, in_maintenance_as: Health, unavailable_as: Health) -> Health {
    if m.in_maintenance {
        in_maintenance_as
    } else if m.unavailable {
        unavailable_as
    } else {
        m.health
    }
}

/// An aggregate monitor's state from its children.
pub fn aggregate(algorithm: Algorithm, children: &[Health]) -> Health {
    match algorithm {
        Algorithm::WorstOf => worst_of(children),
        Algorithm::BestOf => best_of(children),
    }
}

/// A dependency monitor's state from its members, member by member: the definition
/// [`dependency_counts`] decides from counts (the tests hold them equal).
#[cfg(test)]
pub fn dependency(
    algorithm: DependencyAlgorithm,
    percent: Option<u8>,
    members: &[Member],
    in_maintenance_as: Health,
    unavailable_as: Health,
) -> Health {
    let hs: Vec<Health> = members
        .iter()
        .map(|m| counted_as(m, in_maintenance_as, unavailable_as))
        .collect();
    match algorithm {
        DependencyAlgorithm::WorstOf => worst_of(&hs),
        DependencyAlgorithm::BestOf => best_of(&hs),
        DependencyAlgorithm::Percentage => percentage(&hs, percent.unwrap_or(100)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Health::*;

    #[test]
    fn worst_and_best_ignore_uninitialized() {
        assert_eq!(worst_of(&[Healthy, Uninitialized, Warning]), Warning);
        assert_eq!(worst_of(&[Uninitialized, Uninitialized]), Uninitialized);
        assert_eq!(worst_of(&[]), Uninitialized);
        assert_eq!(best_of(&[Critical, Uninitialized, Warning]), Warning);
        assert_eq!(best_of(&[Uninitialized, Critical]), Critical);
    }

    #[test]
    fn percentage_is_the_worst_of_the_healthiest_n_percent() {
        let fleet = |critical: usize, n: usize| {
            let mut v = vec![Healthy; n - critical];
            v.extend(vec![Critical; critical]);
            v
        };
        // N = 60: critical once more than 40% are critical.
        assert_eq!(percentage(&fleet(4, 10), 60), Healthy, "40%");
        assert_eq!(percentage(&fleet(5, 10), 60), Critical, "50%");
        assert_eq!(percentage(&fleet(1, 3), 60), Healthy, "33%");
        assert_eq!(percentage(&fleet(2, 3), 60), Critical, "67%");
        assert_eq!(
            percentage(&[Healthy, Warning, Critical, Uninitialized], 100),
            Critical,
            "100% is WorstOf"
        );
        assert_eq!(
            percentage(&[Healthy, Warning, Critical], 1),
            Healthy,
            "1% is the best"
        );
        assert_eq!(percentage(&[Uninitialized], 50), Uninitialized);
    }

    #[test]
    fn members_in_maintenance_or_unavailable_count_as_configured() {
        let m = |health, in_maintenance, unavailable| Member {
            health,
            in_maintenance,
            unavailable,
        };
        let members = [
            m(Healthy, false, false),
            m(Critical, true, false),
            m(Healthy, false, true),
        ];
        assert_eq!(
            dependency(
                DependencyAlgorithm::WorstOf,
                None,
                &members,
                Uninitialized,
                Critical
            ),
            Critical,
            "unavailable counts as critical"
        );
        assert_eq!(
            dependency(
                DependencyAlgorithm::WorstOf,
                None,
                &members,
                Uninitialized,
                Uninitialized
            ),
            Healthy,
            "both left out"
        );
        assert_eq!(
            dependency(
                DependencyAlgorithm::WorstOf,
                None,
                &members,
                Warning,
                Uninitialized
            ),
            Warning,
            "maintenance counts as warning"
        );
        assert_eq!(
            dependency(
                DependencyAlgorithm::Percentage,
                Some(50),
                &members,
                Uninitialized,
                Critical
            ),
            Healthy
        );
    }

    fn health() -> impl Strategy<Value = Health> {
        prop_oneof![
            Just(Uninitialized),
            Just(Healthy),
            Just(Warning),
            Just(Critical)
        ]
    }

    fn algorithm() -> impl Strategy<Value = (DependencyAlgorithm, Option<u8>)> {
        prop_oneof![
            Just((DependencyAlgorithm::WorstOf, None)),
            Just((DependencyAlgorithm::BestOf, None)),
            (1u8..=100).prop_map(|n| (DependencyAlgorithm::Percentage, Some(n))),
            Just((DependencyAlgorithm::Percentage, None)),
        ]
    }

    proptest! {
        /// Counting members gives what looking at each of them gives.
        #[test]
        fn counts_decide_as_the_members_do(
            members in prop::collection::vec((health(), any::<bool>(), any::<bool>()), 0..30),
            (algorithm, percent) in algorithm(),
            in_maintenance_as in health(),
            unavailable_as in health(),
        ) {
            let members: Vec<Member> = members
                .into_iter()
                .map(|(health, in_maintenance, unavailable)| Member { health, in_maintenance, unavailable })
                .collect();
            let mut counts: Counts = [0; 4];
            for m in &members {
                counts[counted_as(m, in_maintenance_as, unavailable_as) as usize] += 1;
            }
            prop_assert_eq!(
                dependency_counts(algorithm, percent, &counts),
                dependency(algorithm, percent, &members, in_maintenance_as, unavailable_as)
            );
        }

        /// Percentage lies between BestOf and WorstOf, equals WorstOf at 100, and never
        /// turns unhealthy because of uninitialized members.
        #[test]
        fn percentage_between_best_and_worst(hs in prop::collection::vec(health(), 0..20), n in 1u8..=100) {
            let p = percentage(&hs, n);
            prop_assert!(p >= best_of(&hs) && p <= worst_of(&hs));
            prop_assert_eq!(percentage(&hs, 100), worst_of(&hs));
            let without: Vec<Health> = hs.iter().copied().filter(|h| *h != Uninitialized).collect();
            prop_assert_eq!(p, percentage(&without, n));
        }

        /// More healthy members never make a rollup worse.
        #[test]
        fn adding_a_healthy_member_never_hurts(hs in prop::collection::vec(health(), 1..20), n in 1u8..=100) {
            let mut more = hs.clone();
            more.push(Healthy);
            let before = percentage(&hs, n);
            let after = percentage(&more, n);
            prop_assert!(before == Uninitialized || after <= before);
            prop_assert!(worst_of(&hs) == Uninitialized || worst_of(&more) <= worst_of(&hs).max(Healthy));
        }
    }
}
