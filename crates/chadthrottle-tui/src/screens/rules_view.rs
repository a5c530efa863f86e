//! The rules view (`R`): every rule in force with its target, limits, mode, how many
//! processes it governs and their rates now, the selected one's members under the table.

use crate::app::App;
use crate::theme::Theme;
use chadthrottle_core::rate::format_rate;
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::usage::{LimitRates, Snapshot};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

/// The rates its members move now, summed (download, upload): the processes the table
/// shows, whatever its filter and traffic view.
pub fn member_rates(rule: &RuleStatus, snapshot: &Snapshot) -> (u64, u64) {
    snapshot
        .processes
        .iter()
        .filter(|p| {
            rule.members
                .iter()
                .any(|m| m.pid == p.pid && m.start_time == p.start_time)
        })
        .fold((0, 0), |(down, up), p| (down + p.rx_rate, up + p.tx_rate))
}

/// The line under the table: what the selected rule matches and its member processes.
fn members_line(rule: &RuleStatus, snapshot: &Snapshot) -> String {
    let name = |pid: u32| {
        snapshot
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| format!("{pid} {}", p.name))
            .unwrap_or_else(|| pid.to_string())
    };
    let members: Vec<String> = rule.members.iter().map(|m| name(m.pid)).collect();
    let members = if members.is_empty() {
        "no process now".to_owned()
    } else {
        members.join(", ")
    };
    format!(" {} → {}: {members}", rule.spec.name, rule.resolved)
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let snapshot = app.snapshot();
    let header = Row::new(
        ["RULE", "TARGET", "LIMIT", "MODE", "PROCS", "↓RATE", "↑RATE"]
            .into_iter()
            .map(Cell::from),
    )
    .style(theme.header());
    let rows = app.rules.iter().enumerate().map(|(at, rule)| {
        let (down, up) = member_rates(rule, snapshot);
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
    // the table scrolls with the selection, the members line keeps the last row
    let table_area = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let visible = usize::from(table_area.height.saturating_sub(1)).max(1);
    let offset = app.rule_selected.saturating_sub(visible - 1);
    let table = Table::new(rows.skip(offset).take(visible), widths)
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, table_area);
    let last = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: 1.min(area.height),
        ..area
    };
    let text = match app.rules.get(app.rule_selected) {
        Some(rule) => members_line(rule, snapshot),
        None => " no rules: t on a process limits its executable, unit or container".to_owned(),
    };
    frame.render_widget(Paragraph::new(text).style(theme.fading()), last);
}
