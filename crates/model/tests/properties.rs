//! Property tests: the expression parser and evaluator, the `$Target`/`$Data` template parser,
//! and the TOML round trip of packs.

use std::collections::BTreeMap;

use healthstream_model::expr::{
    CmpOp, Expr, Index, Operand, Path, Pattern, Segment, Subject, Value,
};
use healthstream_model::pack::*;
use healthstream_model::params::ParamValue;
use healthstream_model::reference::Template;
use proptest::prelude::*;

const KEYWORDS: [&str; 10] = [
    "and",
    "or",
    "not",
    "exists",
    "contained",
    "matches",
    "like",
    "contains",
    "true",
    "false",
];

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.]{0,8}".prop_filter("not a keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,6}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("quote\" back\\slash\nnew\ttab".to_string()),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(
        (
            name(),
            prop_oneof![
                Just(None),
                (1u32..20).prop_map(|n| Some(Index::Position(n))),
                (name(), text()).prop_map(|(name, value)| Some(Index::Attribute { name, value })),
            ],
        )
            .prop_map(|(name, index)| Segment { name, index }),
        1..4,
    )
    .prop_map(Path)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        path().prop_map(Operand::Path),
        text().prop_map(Operand::Text),
        number().prop_map(Operand::Number),
        any::<bool>().prop_map(Operand::Bool),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (operand(), operand(), 0usize..8).prop_map(|(left, right, op)| {
            let op = [
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
                CmpOp::Contains,
                CmpOp::NotContains,
            ][op];
            Expr::Compare { left, op, right }
        }),
        (path(), text(), any::<bool>(), any::<bool>()).prop_map(|(p, src, regex, negate)| {
            let (pattern, op) = if regex {
                let p = Pattern::regex(&regex::escape(&src)).expect("escaped text is a regex");
                (
                    p,
                    if negate {
                        CmpOp::NotMatches
                    } else {
                        CmpOp::Matches
                    },
                )
            } else {
                (
                    Pattern::wildcard(&src).expect("any text is a wildcard"),
                    if negate { CmpOp::NotLike } else { CmpOp::Like },
                )
            };
            Expr::Compare {
                left: Operand::Path(p),
                op,
                right: Operand::Pattern(pattern),
            }
        }),
        path().prop_map(Expr::Exists),
        text().prop_map(Expr::Contained),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// A data item: a few paths with values; membership of one group.
#[derive(Debug, Clone)]
struct Item(BTreeMap<String, Value<'static>>);

impl Subject for Item {
    fn lookup(&self, path: &Path) -> Option<Value<'_>> {
        self.0.get(&path.to_string()).cloned()
    }
    fn contained_in(&self, group: &str) -> bool {
        group.len() % 2 == 0
    }
}

fn item() -> impl Strategy<Value = Item> {
    prop::collection::btree_map(
        "[a-c]",
        prop_oneof![
            number().prop_map(Value::Number),
            "[a-c0-9]{0,3}".prop_map(|t| Value::Text(t.into())),
            any::<bool>().prop_map(Value::Bool),
        ],
        0..3,
    )
    .prop_map(Item)
}

fn small_expr() -> impl Strategy<Value = Expr> {
    let leaf = ("[a-c]", -3i64..3, 0usize..6).prop_map(|(p, n, op)| Expr::Compare {
        left: Operand::Path(Path::name(&p)),
        op: [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ][op],
        right: Operand::Number(n as f64),
    });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..3).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..3).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Printing an expression and parsing it back gives the same expression.
    #[test]
    fn expressions_round_trip(e in expr()) {
        let printed = e.to_string();
        let parsed = Expr::parse(&printed).map_err(|err| TestCaseError::fail(format!("{printed}: {err}")))?;
        prop_assert_eq!(parsed, e, "{}", printed);
    }

    /// Parsing never panics, whatever the text.
    #[test]
    fn parser_never_panics(s in any::<String>()) {
        let _ = Expr::parse(&s);
        let _ = Template::parse(&s);
        let _ = Path::parse(&s);
    }

    /// The evaluator follows boolean logic: not, and, or, and De Morgan's laws.
    #[test]
    fn evaluator_is_boolean_logic(a in small_expr(), b in small_expr(), it in item()) {
        let (va, vb) = (a.eval(&it), b.eval(&it));
        prop_assert_eq!(Expr::Not(Box::new(a.clone())).eval(&it), !va);
        prop_assert_eq!(Expr::And(vec![a.clone(), b.clone()]).eval(&it), va && vb);
        prop_assert_eq!(Expr::Or(vec![a.clone(), b.clone()]).eval(&it), va || vb);
        let de_morgan = Expr::Not(Box::new(Expr::Or(vec![
            Expr::Not(Box::new(a.clone())),
            Expr::Not(Box::new(b.clone())),
        ])));
        prop_assert_eq!(de_morgan.eval(&it), va && vb);
    }

    /// Numeric comparisons agree with Rust's on present numeric values, and are all false on a
    /// missing value.
    #[test]
    fn numeric_comparisons(x in number(), y in number(), op in 0usize..6) {
        let ops = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];
        let e = Expr::Compare { left: Operand::Path(Path::name("v")), op: ops[op], right: Operand::Number(y) };
        let want = [x == y, x != y, x < y, x <= y, x > y, x >= y][op];
        let it = Item([("v".to_string(), Value::Number(x))].into_iter().collect());
        prop_assert_eq!(e.eval(&it), want);
        let text = Item([("v".to_string(), Value::Text(x.to_string().into()))].into_iter().collect());
        prop_assert_eq!(e.eval(&text), want, "numbers sent as text compare as numbers");
        prop_assert!(!e.eval(&Item(BTreeMap::new())));
    }

    /// Templates print back to what parses to the same template.
    #[test]
    fn templates_round_trip(parts in prop::collection::vec(prop_oneof![
        "[a-z $]{0,5}".prop_map(|s| s),
        name().prop_map(|n| format!("$Target/Property[Name=\"{n}\"]$")),
        (name(), 1usize..3).prop_map(|(n, h)| format!("$Target/{}Property[Name=\"{n}\"]$", "Host/".repeat(h))),
        path().prop_map(|p| format!("$Data/{p}$")),
    ], 0..5)) {
        let src = parts.concat();
        if let Ok(t) = Template::parse(&src) {
            let again = Template::parse(&t.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again.to_string(), t.to_string());
        }
    }

    /// A pack written as TOML and read back is the same pack.
    #[test]
    fn packs_round_trip_through_toml(p in pack()) {
        let text = p.to_toml().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Pack = toml::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, p, "{}", text);
    }
}

fn id() -> impl Strategy<Value = String> {
    "[A-Z][a-z]{1,5}\\.[A-Z][a-z]{1,5}"
}

fn interval() -> impl Strategy<Value = Interval> {
    (1u64..100_000).prop_map(Interval::secs)
}

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![
        Just(Health::Healthy),
        Just(Health::Warning),
        Just(Health::Critical)
    ]
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Above), Just(Direction::Below)]
}

fn source() -> impl Strategy<Value = DataSource> {
    prop_oneof![
        (text(), text(), prop::option::of(text()), interval()).prop_map(
            |(object, counter, instance, interval)| DataSource::Perf {
                object,
                counter,
                instance,
                interval
            }
        ),
        (text(), prop::option::of(small_expr()))
            .prop_map(|(log, filter)| DataSource::Event { log, filter }),
        interval().prop_map(|interval| DataSource::Heartbeat { interval }),
        (text(), interval())
            .prop_map(|(service, interval)| DataSource::Service { service, interval }),
        (prop::collection::vec(text(), 1..3), interval(), interval()).prop_map(
            |(command, interval, timeout)| DataSource::Command {
                command,
                interval,
                timeout
            }
        ),
        (text(), prop::option::of("[a-z]+"))
            .prop_map(|(path, pattern)| DataSource::LogFile { path, pattern }),
    ]
}

fn detection() -> impl Strategy<Value = Detection> {
    prop_oneof![
        (direction(), number(), health()).prop_map(|(direction, t, unhealthy)| {
            Detection::SimpleThreshold {
                direction,
                threshold: Some(t),
                warning: None,
                critical: None,
                unhealthy,
            }
        }),
        (direction(), number(), number()).prop_map(|(direction, w, c)| {
            Detection::SimpleThreshold {
                direction,
                threshold: None,
                warning: Some(w),
                critical: Some(c),
                unhealthy: Health::Critical,
            }
        }),
        (number(), number(), health(), health(), health()).prop_map(
            |(low, high, below, between, above)| {
                Detection::DoubleThreshold {
                    low,
                    high,
                    below,
                    between,
                    above,
                }
            }
        ),
        (direction(), number(), 1u32..10, health()).prop_map(
            |(direction, threshold, samples, unhealthy)| Detection::ConsecutiveSamples {
                direction,
                threshold,
                samples,
                unhealthy
            }
        ),
        (direction(), number(), 1u32..10, health()).prop_map(
            |(direction, threshold, samples, unhealthy)| Detection::AverageThreshold {
                direction,
                threshold,
                samples,
                unhealthy
            }
        ),
        (direction(), number(), 1u32..10, health()).prop_map(
            |(direction, threshold, samples, unhealthy)| Detection::DeltaThreshold {
                direction,
                threshold,
                samples,
                unhealthy
            }
        ),
        (small_expr(), small_expr(), health()).prop_map(
            |(unhealthy_when, healthy_when, unhealthy)| Detection::EventReset {
                unhealthy_when,
                healthy_when,
                unhealthy
            }
        ),
        (small_expr(), health()).prop_map(|(unhealthy_when, unhealthy)| Detection::ManualReset {
            unhealthy_when,
            unhealthy
        }),
        (small_expr(), interval(), health()).prop_map(|(unhealthy_when, after, unhealthy)| {
            Detection::TimerReset {
                unhealthy_when,
                after,
                unhealthy,
            }
        }),
        (any::<bool>(), health()).prop_map(|(check_start_mode, unhealthy)| {
            Detection::BasicService {
                check_start_mode,
                unhealthy,
            }
        }),
        prop::collection::vec(
            (health(), small_expr()).prop_map(|(health, when)| StateCondition { health, when }),
            2..4
        )
        .prop_map(|states| Detection::Expression { states }),
        (1u32..10).prop_map(|missed| Detection::Heartbeat { missed }),
    ]
}

fn param_value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        any::<bool>().prop_map(ParamValue::Bool),
        any::<i64>().prop_map(ParamValue::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(ParamValue::Float),
        text().prop_map(ParamValue::Text),
    ]
}

fn pack() -> impl Strategy<Value = Pack> {
    let class = (
        id(),
        prop::option::of(id()),
        any::<bool>(),
        prop::option::of(id()),
        prop::collection::vec(("[A-Za-z]{1,6}", any::<bool>()), 0..3),
    )
        .prop_map(|(id, base, is_abstract, host, props)| Class {
            id,
            name: None,
            base,
            is_abstract,
            singleton: false,
            host,
            properties: props
                .into_iter()
                .map(|(name, key)| Property {
                    name,
                    kind: PropertyType::Int,
                    key,
                })
                .collect(),
            description: None,
        });
    let group = (
        id(),
        prop::collection::vec((id(), prop::option::of(expr())), 0..3),
        prop::collection::vec(text(), 0..2),
        prop::collection::vec(id(), 0..2),
    )
        .prop_map(|(id, rules, include, subgroups)| Group {
            id,
            name: None,
            base: None,
            relationship: None,
            rules: rules
                .into_iter()
                .map(|(class, expression)| MembershipRule { class, expression })
                .collect(),
            include,
            exclude: vec![],
            subgroups,
            description: None,
        });
    let monitor = (
        id(),
        id(),
        source(),
        detection(),
        any::<bool>(),
        prop::collection::vec("[a-z]{1,5}", 0..3),
    )
        .prop_map(
            |(id, target, source, detect, alert, overridable)| UnitMonitor {
                id,
                name: None,
                target,
                parent: "System.Health.AvailabilityState".into(),
                enabled: true,
                source,
                conditions: vec![Condition::Filter {
                    expression: Expr::Exists(Path::name("Value")),
                }],
                detect,
                alert: alert.then(|| AlertSettings {
                    generate: true,
                    on: Health::Warning,
                    auto_resolve: false,
                    severity: Some(Severity::Critical),
                    priority: Priority::High,
                    name: "n $Target/Property[Name=\"X\"]$".into(),
                    description: String::new(),
                }),
                overridable,
                knowledge: None,
            },
        );
    let over = (
        id(),
        id(),
        "[a-z_]{1,8}",
        param_value(),
        id(),
        prop::option::of(text()),
        any::<bool>(),
    )
        .prop_map(
            |(id, workflow, parameter, value, context, instance, enforced)| Override {
                id,
                workflow,
                parameter,
                value,
                context,
                instance,
                enforced,
            },
        );
    (
        id(),
        prop::collection::vec(1u64..1000, 1..5),
        any::<bool>(),
        prop::collection::vec(class, 0..3),
        prop::collection::vec(group, 0..2),
        prop::collection::vec(monitor, 0..3),
        prop::collection::vec(over, 0..3),
    )
        .prop_map(
            |(pid, version, sealed, classes, groups, monitors, overrides)| {
                let mut p = Pack::new(&pid, Version(version));
                p.pack.sealed = sealed;
                p.classes = classes;
                p.groups = groups;
                p.monitors = monitors;
                p.overrides = overrides;
                p
            },
        )
}
