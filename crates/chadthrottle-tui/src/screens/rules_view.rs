//! The rules view (`R`): every rule in force with its target, limits, mode, how many
//! processes it governs and their rates now, the selected one's members under the table.

use crate::app::App;
use crate::theme::Theme;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::rate::format_rate;
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::usage::{LimitRates, Snapshot};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use std::collections::HashMap;

/// Each process the snapshot shows, by identity: its name and rates (down, up). Built once
/// a frame, so that a rule's members are summed in their own number of steps however
/// many processes there are.
pub fn by_process(snapshot: &Snapshot) -> HashMap<ProcessRef, (&str, u64, u64)> {
    snapshot
        .processes
        .iter()
        .map(|p| {
            let process = ProcessRef {
                pid: p.pid,
                start_time: p.start_time,
            };
            (process, (p.name.as_str(), p.rx_rate, p.tx_rate))
        })
        .collect()
}

/// The rates its members move now, summed (download, upload).
pub fn member_rates(
    rule: &RuleStatus,
    shown: &HashMap<ProcessRef, (&str, u64, u64)>,
) -> (u64, u64) {
    rule.members
        .iter()
        .filter_map(|member| shown.get(member))
        .fold((0, 0), |(down, up), (_, rx, tx)| (down + rx, up + tx))
}

/// The line under the table, at most `width` columns: what the selected rule matches and
/// as many of its member processes as fit, then how many more (a rule may have tens of
/// thousands).
fn members_line(
    rule: &RuleStatus,
    shown: &HashMap<ProcessRef, (&str, u64, u64)>,
    width: usize,
) -> String {
    let mut line = format!(" {} → {}: ", rule.spec.name, rule.resolved);
    if rule.members.is_empty() {
        line.push_str("no process now");
        return line;
    }
    for (at, member) in rule.members.iter().enumerate() {
        let entry = match shown.get(member) {
            Some((name, _, _)) => format!("{} {name}", member.pid),
            None => member.pid.to_string(),
        };
        let more = format!(" +{} more", rule.members.len() - at);
        // room is kept for the count of those that do not fit
        if line.chars().count() + entry.len() + 2 + more.len() > width && at > 0 {
            line.push_str(more.trim_start());
            return line;
        }
        line.push_str(&entry);
        if at + 1 < rule.members.len() {
            line.push_str(", ");
        }
    }
    line
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let shown = by_process(app.snapshot());
    let header = Row::new(
        ["RULE", "TARGET", "LIMIT", "MODE", "PROCS", "↓RATE", "↑RATE"]
            .into_iter()
            .map(Cell::from),
    )
    .style(theme.header());
    // the table scrolls with the selection, the members line keeps the last row
    let table_area = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let visible = usize::from(table_area.height.saturating_sub(1)).max(1);
    let offset = app.rule_selected.saturating_sub(visible - 1);
    // only the rows shown are made: a full kernel holds 4 096 rules
    let shown_rules = app.rules.iter().enumerate().skip(offset).take(visible);
    let rows = shown_rules.map(|(at, rule)| {
        let (down, up) = member_rates(rule, &shown);
        let style = if at == app.rule_selected {
            theme.selected()
        } else {
            Style::new()
        };
        Row::new([
            Cell::from(rule.spec.name.clone()),
            Cell::from(rule.spec.target.to_string()),
            Cell::from(Span::styled(
                LimitRates::of(&rule.limits).to_string(),
                theme.limit(),
            )),
            Cell::from(rule.spec.mode.name()),
            Cell::from(rule.members.len().to_string()),
            Cell::from(format_rate(down)),
            Cell::from(format_rate(up)),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(20),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    let table = Table::new(rows, widths).header(header).column_spacing(1);
    frame.render_widget(table, table_area);
    let last = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: 1.min(area.height),
        ..area
    };
    let text = match app.rules.get(app.rule_selected) {
        Some(rule) => members_line(rule, &shown, usize::from(area.width)),
        None => " no rules: t on a process limits its executable, unit or container".to_owned(),
    };
    frame.render_widget(Paragraph::new(text).style(theme.fading()), last);
}
