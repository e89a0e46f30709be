//! Malformed management packs: a clear error (or a report entry), never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use healthstream_model::pack::Detection;
use healthstream_model::scom::{import, ImportError, Outcome};

fn mp(monitoring: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<ManagementPack SchemaVersion="2.0" ContentReadable="true">
  <Manifest>
    <Identity><ID>Test.Pack</ID><Version>1.0.0.0</Version></Identity>
    <Name>Test</Name>
    <References>
      <Reference Alias="System"><ID>System.Library</ID><Version>7.5.8501.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
      <Reference Alias="Health"><ID>System.Health.Library</ID><Version>7.0.8433.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
      <Reference Alias="Performance"><ID>System.Performance.Library</ID><Version>7.0.8433.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
    </References>
  </Manifest>
  <TypeDefinitions>
    <EntityTypes>
      <ClassTypes>
        <ClassType ID="Test.Thing" Accessibility="Public" Abstract="false" Base="System!System.LogicalEntity" Hosted="false" Singleton="false">
          <Property ID="Name" Type="string" Key="true" />
        </ClassType>
      </ClassTypes>
    </EntityTypes>
  </TypeDefinitions>
  <Monitoring>{monitoring}</Monitoring>
</ManagementPack>"#
    )
}

fn run(bytes: &[u8]) -> Result<healthstream_model::scom::ScomImport, ImportError> {
    import(bytes, Path::new("test.xml"), &BTreeMap::new())
}

fn perf_monitor(samples: &str, threshold: &str) -> String {
    format!(
        r#"<Monitors><UnitMonitor ID="Test.M" Target="Test.Thing" ParentMonitorID="Health!System.Health.PerformanceState" TypeID="Performance!System.Performance.ConsecutiveSamplesThreshold">
  <OperationalStates>
    <OperationalState ID="T" MonitorTypeStateID="ConditionTrue" HealthState="Warning" />
    <OperationalState ID="F" MonitorTypeStateID="ConditionFalse" HealthState="Success" />
  </OperationalStates>
  <Configuration><ObjectName>o</ObjectName><CounterName>c</CounterName><InstanceName /><Frequency>60</Frequency>
    <Threshold>{threshold}</Threshold><Direction>greater</Direction><NumSamples>{samples}</NumSamples></Configuration>
</UnitMonitor></Monitors>"#
    )
}

#[test]
fn a_minimal_pack_imports() {
    let imp = run(mp(&perf_monitor("3", "90")).as_bytes()).expect("imports");
    assert_eq!(imp.pack.classes.len(), 1);
    assert!(matches!(
        imp.pack.monitors[0].detect,
        Detection::ConsecutiveSamples { samples: 3, .. }
    ));
    assert!(imp.pack.monitors[0].enabled);
}

#[test]
fn truncated_file_is_an_xml_error_with_its_position() {
    let text = mp(&perf_monitor("3", "90"));
    for cut in [10, text.len() / 2, text.len() - 5] {
        match run(&text.as_bytes()[..cut]) {
            Err(ImportError::Xml { line, message, .. }) => {
                assert!(line >= 1);
                assert!(!message.is_empty());
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn wrong_encodings_are_errors() {
    let mut bad = mp("").into_bytes();
    bad[60] = 0xFF;
    let e = run(&bad).expect_err("invalid utf-8");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    let mut odd = vec![0xFF, 0xFE];
    odd.extend(mp("").encode_utf16().flat_map(|u| u.to_le_bytes()));
    odd.pop();
    assert!(run(&odd)
        .expect_err("odd utf-16")
        .to_string()
        .contains("odd number of bytes"));
    // UTF-16 with a byte-order mark is fine.
    let mut le = vec![0xFF, 0xFE];
    le.extend(
        mp("")
            .replace("utf-8", "utf-16")
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes()),
    );
    assert!(run(&le).is_ok());
}

#[test]
fn not_a_management_pack() {
    for (text, needle) in [
        ("<Foo/>", "root element is <Foo>"),
        ("<ManagementPack SchemaVersion=\"2.0\"/>", "no <Manifest>"),
        ("<ManagementPack SchemaVersion=\"3.0\"><Manifest/></ManagementPack>", "SchemaVersion"),
        ("<ManagementPack><Manifest><Identity><ID>A</ID><Version>x.y</Version></Identity></Manifest></ManagementPack>", "Version"),
        ("<ManagementPack><Manifest><Identity><Version>1.0</Version></Identity></Manifest></ManagementPack>", "<Identity><ID>"),
    ] {
        let e = run(text.as_bytes()).expect_err(text);
        assert!(matches!(e, ImportError::NotAManagementPack { .. }), "{e:?}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn entity_expansion_is_refused() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><ManagementPack>&lol2;</ManagementPack>";
    assert!(matches!(run(bomb.as_bytes()), Err(ImportError::Xml { .. })));
}

#[test]
fn unknown_elements_are_reported_and_the_rest_imported() {
    let text = mp(&format!(
        "{}<Frobnicators><Frob ID=\"Test.F\"/></Frobnicators>",
        perf_monitor("2", "5")
    ))
    .replace(
        "</ManagementPack>",
        "<Gadgets><Gadget ID=\"G\"/></Gadgets></ManagementPack>",
    );
    let imp = run(text.as_bytes()).expect("imports");
    assert_eq!(imp.pack.monitors.len(), 1);
    let frob = imp
        .report
        .entries
        .iter()
        .find(|e| e.id == "Test.F")
        .expect("reported");
    assert_eq!(frob.outcome, Outcome::Skipped);
    assert!(frob.notes[0].contains("<Frob> is not supported"));
    assert!(imp
        .report
        .entries
        .iter()
        .any(|e| e.scom_type == "Gadgets" && e.notes[0].contains("unknown section")));
}

#[test]
fn huge_and_bad_values_are_reported_not_truncated() {
    for (samples, threshold, needle) in [
        ("99999999999999999999999", "90", "NumSamples"),
        ("0", "90", "NumSamples"),
        ("3", "ninety", "Threshold"),
        ("3", "1e999", "Threshold"),
    ] {
        let imp = run(mp(&perf_monitor(samples, threshold)).as_bytes()).expect("imports");
        let m = &imp.pack.monitors[0];
        assert!(
            matches!(m.detect, Detection::Unsupported { .. }),
            "{samples}/{threshold}: {:?}",
            m.detect
        );
        assert!(!m.enabled);
        let entry = imp
            .report
            .entries
            .iter()
            .find(|e| e.id == "Test.M")
            .expect("reported");
        assert!(entry.notes.iter().any(|n| n.contains(needle)), "{entry:?}");
    }
    let long_id = "X".repeat(2_000_000);
    let text = mp("").replace("Test.Thing", &long_id);
    let imp = run(text.as_bytes()).expect("a long id is still an id");
    assert_eq!(imp.pack.classes[0].id.len(), 2_000_000);
}

#[test]
fn deeply_nested_expressions_are_reported() {
    let depth = 5_000;
    let expr = format!(
        "{}<SimpleExpression><ValueExpression><XPathQuery>EventDisplayNumber</XPathQuery></ValueExpression><Operator>Equal</Operator><ValueExpression><Value Type=\"Integer\">1</Value></ValueExpression></SimpleExpression>{}",
        "<Not><Expression>".repeat(depth),
        "</Expression></Not>".repeat(depth)
    );
    let rule = format!(
        r#"<Rules><Rule ID="Test.R" Target="Test.Thing"><Category>EventCollection</Category>
<DataSources><DataSource ID="DS" TypeID="Windows!Microsoft.Windows.EventProvider"><ComputerName>.</ComputerName><LogName>Application</LogName><Expression>{expr}</Expression></DataSource></DataSources>
<WriteActions><WriteAction ID="W" TypeID="SC!Microsoft.SystemCenter.CollectEvent" /></WriteActions></Rule></Rules>"#
    );
    let text = mp(&rule)
        .replace("</References>", "<Reference Alias=\"Windows\"><ID>Microsoft.Windows.Library</ID><Version>7.5.8501.0</Version></Reference><Reference Alias=\"SC\"><ID>Microsoft.SystemCenter.Library</ID><Version>7.0.8433.0</Version></Reference></References>");
    match run(text.as_bytes()) {
        Err(ImportError::Xml { message, line, .. }) => {
            assert!(message.contains("nested deeper than"), "{message}");
            assert!(line > 1);
        }
        other => panic!("{:?}", other.map(|i| i.report)),
    }
    // Within the XML limit but beyond the expression limit: the rule is reported.
    let depth = 100;
    let expr = format!(
        "{}<SimpleExpression><ValueExpression><XPathQuery>EventDisplayNumber</XPathQuery></ValueExpression><Operator>Equal</Operator><ValueExpression><Value Type=\"Integer\">1</Value></ValueExpression></SimpleExpression>{}",
        "<Not><Expression>".repeat(depth / 2),
        "</Expression></Not>".repeat(depth / 2)
    );
    let text = text_with_rule(&expr);
    let imp = run(text.as_bytes()).expect("imports");
    let r = &imp.pack.rules[0];
    assert!(!r.enabled);
    let entry = imp
        .report
        .entries
        .iter()
        .find(|e| e.id == "Test.R")
        .expect("reported");
    assert!(
        entry.notes.iter().any(|n| n.contains("nested more than")),
        "{entry:?}"
    );
}

fn text_with_rule(expr: &str) -> String {
    let rule = format!(
        r#"<Rules><Rule ID="Test.R" Target="Test.Thing"><Category>EventCollection</Category>
<DataSources><DataSource ID="DS" TypeID="Windows!Microsoft.Windows.EventProvider"><ComputerName>.</ComputerName><LogName>Application</LogName><Expression>{expr}</Expression></DataSource></DataSources>
<WriteActions><WriteAction ID="W" TypeID="SC!Microsoft.SystemCenter.CollectEvent" /></WriteActions></Rule></Rules>"#
    );
    mp(&rule).replace("</References>", "<Reference Alias=\"Windows\"><ID>Microsoft.Windows.Library</ID><Version>7.5.8501.0</Version></Reference><Reference Alias=\"SC\"><ID>Microsoft.SystemCenter.Library</ID><Version>7.0.8433.0</Version></Reference></References>")
}

#[test]
fn oversized_files_are_refused() {
    let big = vec![b' '; healthstream_model::scom::decode::MAX_MP_BYTES + 1];
    assert!(run(&big)
        .expect_err("too big")
        .to_string()
        .contains("limited to"));
}

/// Module types and elements the six real packs do not use: manual-reset and timer-reset
/// event monitors, an alert rule with suppression, rule and discovery overrides, a knowledge
/// article, and a schema 1.0 pack without a SchemaVersion attribute.
#[test]
fn other_standard_modules_map_onto_the_native_model() {
    let monitoring = r#"
<Rules>
  <Rule ID="Test.AlertRule" Target="Test.Thing" Enabled="true">
    <Category>Alert</Category>
    <DataSources><DataSource ID="DS" TypeID="Windows!Microsoft.Windows.EventProvider">
      <ComputerName>.</ComputerName><LogName>System</LogName>
      <Expression><RegExExpression><ValueExpression><XPathQuery>PublisherName</XPathQuery></ValueExpression><Operator>MatchesRegularExpression</Operator><Pattern>^disk$</Pattern></RegExExpression></Expression>
    </DataSource></DataSources>
    <WriteActions><WriteAction ID="Alert" TypeID="Health!System.Health.GenerateAlert">
      <Priority>2</Priority><Severity>2</Severity>
      <AlertMessageId>$MPElement[Name="Test.AlertRule.Message"]$</AlertMessageId>
      <AlertParameters><AlertParameter1>$Data/EventDescription$</AlertParameter1></AlertParameters>
      <Suppression><SuppressionValue>$Data/EventDisplayNumber$</SuppressionValue></Suppression>
    </WriteAction></WriteActions>
  </Rule>
</Rules>
<Monitors>
  <UnitMonitor ID="Test.Manual" Target="Test.Thing" ParentMonitorID="Health!System.Health.AvailabilityState" TypeID="Windows!Microsoft.Windows.SingleEventLogManualReset2StateMonitorType">
    <OperationalStates>
      <OperationalState ID="E" MonitorTypeStateID="EventRaised" HealthState="Warning" />
      <OperationalState ID="M" MonitorTypeStateID="ManualResetEventRaised" HealthState="Success" />
    </OperationalStates>
    <Configuration><ComputerName>.</ComputerName><LogName>System</LogName>
      <Expression><SimpleExpression><ValueExpression><XPathQuery Type="UnsignedInteger">EventDisplayNumber</XPathQuery></ValueExpression><Operator>Equal</Operator><ValueExpression><Value Type="UnsignedInteger">7</Value></ValueExpression></SimpleExpression></Expression>
    </Configuration>
  </UnitMonitor>
  <UnitMonitor ID="Test.Timer" Target="Test.Thing" ParentMonitorID="Health!System.Health.AvailabilityState" TypeID="Windows!Microsoft.Windows.SingleEventLogTimer2StateMonitorType">
    <OperationalStates>
      <OperationalState ID="E" MonitorTypeStateID="EventRaised" HealthState="Error" />
      <OperationalState ID="T" MonitorTypeStateID="TimerEventRaised" HealthState="Success" />
    </OperationalStates>
    <Configuration><ComputerName>.</ComputerName><LogName>System</LogName>
      <Expression><Exists><ValueExpression><XPathQuery>Params/Param[1]</XPathQuery></ValueExpression></Exists></Expression>
      <TimerWaitInSeconds>600</TimerWaitInSeconds>
    </Configuration>
  </UnitMonitor>
</Monitors>
<Overrides>
  <RulePropertyOverride ID="Test.O1" Context="Test.Thing" Enforced="true" Rule="Test.AlertRule" Property="Enabled"><Value>false</Value></RulePropertyOverride>
  <MonitorConfigurationOverride ID="Test.O2" Context="Test.Thing" ContextInstance="abc" Monitor="Test.Timer" Parameter="TimerWaitInSeconds"><Value>1200</Value></MonitorConfigurationOverride>
</Overrides>"#;
    let text = mp(monitoring)
        .replace(" SchemaVersion=\"2.0\"", "")
        .replace("</References>", "<Reference Alias=\"Windows\"><ID>Microsoft.Windows.Library</ID><Version>6.0.4837.0</Version></Reference></References>")
        .replace(
            "</ManagementPack>",
            r#"<LanguagePacks><LanguagePack ID="ENU" IsDefault="true">
  <DisplayStrings><DisplayString ElementID="Test.AlertRule.Message"><Name>Disk error</Name><Description>The disk said: {0}</Description></DisplayString></DisplayStrings>
  <KnowledgeArticles><KnowledgeArticle ElementID="Test.Manual" Visible="true"><MamlContent>
    <maml:section xmlns:maml="http://schemas.microsoft.com/maml/2004/10"><maml:title>Summary</maml:title><maml:para>Event 7 means trouble.</maml:para></maml:section>
    <maml:section xmlns:maml="http://schemas.microsoft.com/maml/2004/10"><maml:title>Causes</maml:title><maml:para>A loose cable.</maml:para><maml:para>A dead disk.</maml:para></maml:section>
    <maml:section xmlns:maml="http://schemas.microsoft.com/maml/2004/10"><maml:title>Resolutions</maml:title><maml:para>Replace it.</maml:para></maml:section>
  </MamlContent></KnowledgeArticle></KnowledgeArticles>
</LanguagePack></LanguagePacks></ManagementPack>"#,
        );
    let imp = run(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(imp.report.schema_version, "1.0");
    use healthstream_model::pack::{Action, DataSource, Health, Severity};
    let manual = imp
        .pack
        .monitors
        .iter()
        .find(|m| m.id == "Test.Manual")
        .expect("manual");
    match &manual.detect {
        Detection::ManualReset {
            unhealthy_when,
            unhealthy,
        } => {
            assert_eq!(unhealthy_when.to_string(), "EventId == 7");
            assert_eq!(*unhealthy, Health::Warning);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&manual.source, DataSource::Event { log, .. } if log == "System"));
    let k = manual.knowledge.as_ref().expect("knowledge article");
    assert_eq!(k.summary, "Event 7 means trouble.");
    assert_eq!(k.causes, ["A loose cable.", "A dead disk."]);
    assert_eq!(k.resolutions, ["Replace it."]);
    let timer = imp
        .pack
        .monitors
        .iter()
        .find(|m| m.id == "Test.Timer")
        .expect("timer");
    match &timer.detect {
        Detection::TimerReset {
            unhealthy_when,
            after,
            unhealthy,
        } => {
            assert_eq!(unhealthy_when.to_string(), "exists(Params/Param[1])");
            assert_eq!(after.0.as_secs(), 600);
            assert_eq!(*unhealthy, Health::Critical);
        }
        other => panic!("{other:?}"),
    }
    let rule = &imp.pack.rules[0];
    assert!(
        matches!(&rule.source, DataSource::Event { filter: Some(f), .. } if f.to_string() == "Source matches \"^disk$\"")
    );
    match &rule.actions[0] {
        Action::Alert {
            name,
            description,
            severity,
            suppression,
            ..
        } => {
            assert_eq!(name, "Disk error");
            assert_eq!(description, "The disk said: $Data/Message$");
            assert_eq!(*severity, Severity::Critical);
            assert_eq!(suppression, &["EventId".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let o1 = &imp.pack.overrides[0];
    assert_eq!((o1.parameter.as_str(), o1.enforced), ("enabled", true));
    let o2 = &imp.pack.overrides[1];
    assert_eq!(o2.parameter, "after");
    assert_eq!(o2.instance.as_deref(), Some("abc"));
    assert_eq!(
        o2.value,
        healthstream_model::params::ParamValue::Text("20m".into())
    );
}

/// A group populated with another group of the pack (SCOM's nested groups): the inner group
/// is carried over as a subgroup, not as a rule over its class.
#[test]
fn a_group_of_groups_imports_as_subgroups() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<ManagementPack SchemaVersion="2.0" ContentReadable="true">
  <Manifest>
    <Identity><ID>Test.Groups</ID><Version>1.0.0.0</Version></Identity>
    <Name>Test</Name>
    <References>
      <Reference Alias="System"><ID>System.Library</ID><Version>7.5.8501.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
      <Reference Alias="SC"><ID>Microsoft.SystemCenter.Library</ID><Version>7.0.8433.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
      <Reference Alias="Windows"><ID>Microsoft.Windows.Library</ID><Version>7.5.8501.0</Version><PublicKeyToken>x</PublicKeyToken></Reference>
    </References>
  </Manifest>
  <TypeDefinitions>
    <EntityTypes>
      <ClassTypes>
        <ClassType ID="Test.Web" Accessibility="Public" Abstract="false" Base="SC!Microsoft.SystemCenter.InstanceGroup" Hosted="false" Singleton="true" />
        <ClassType ID="Test.All" Accessibility="Public" Abstract="false" Base="SC!Microsoft.SystemCenter.InstanceGroup" Hosted="false" Singleton="true" />
      </ClassTypes>
    </EntityTypes>
  </TypeDefinitions>
  <Monitoring>
    <Discoveries>
      <Discovery ID="Test.Web.Populate" Target="Test.Web" Enabled="true">
        <Category>Discovery</Category>
        <DiscoveryTypes />
        <DataSource ID="GP" TypeID="SC!Microsoft.SystemCenter.GroupPopulator">
          <RuleId>$MPElement$</RuleId>
          <GroupInstanceId>$MPElement[Name="Test.Web"]$</GroupInstanceId>
          <MembershipRules>
            <MembershipRule>
              <MonitoringClass>$MPElement[Name="Windows!Microsoft.Windows.Computer"]$</MonitoringClass>
              <RelationshipClass>$MPElement[Name="SC!Microsoft.SystemCenter.InstanceGroupContainsEntities"]$</RelationshipClass>
            </MembershipRule>
          </MembershipRules>
        </DataSource>
      </Discovery>
      <Discovery ID="Test.All.Populate" Target="Test.All" Enabled="true">
        <Category>Discovery</Category>
        <DiscoveryTypes />
        <DataSource ID="GP" TypeID="SC!Microsoft.SystemCenter.GroupPopulator">
          <RuleId>$MPElement$</RuleId>
          <GroupInstanceId>$MPElement[Name="Test.All"]$</GroupInstanceId>
          <MembershipRules>
            <MembershipRule>
              <MonitoringClass>$MPElement[Name="Test.Web"]$</MonitoringClass>
              <RelationshipClass>$MPElement[Name="SC!Microsoft.SystemCenter.InstanceGroupContainsEntities"]$</RelationshipClass>
            </MembershipRule>
          </MembershipRules>
        </DataSource>
      </Discovery>
    </Discoveries>
  </Monitoring>
</ManagementPack>"#;
    let imp = run(xml.as_bytes()).expect("imports");
    let all = imp
        .pack
        .groups
        .iter()
        .find(|g| g.id == "Test.All")
        .expect("group Test.All");
    assert_eq!(all.subgroups, ["Test.Web"]);
    assert!(all.rules.is_empty(), "{:?}", all.rules);
    let web = imp
        .pack
        .groups
        .iter()
        .find(|g| g.id == "Test.Web")
        .expect("group Test.Web");
    assert!(web.subgroups.is_empty());
    assert_eq!(web.rules.len(), 1);
}
