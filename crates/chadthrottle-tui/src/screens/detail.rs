//! The selected process's detail: a tab bar and, in a box titled with the process, one
//! of four tabs — overview, connections, traffic, system.

use crate::app::App;
use crate::layout::{TAB_DIVIDER, tab_label};
use crate::mode::Tab;
use crate::theme::Theme;
use chadthrottle_core::locality::Locality;
use chadthrottle_core::meter;
use chadthrottle_core::rate::{format_bytes, format_rate};
use chadthrottle_core::usage::{ProcessUsage, Protocol, Split};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};

/// `bar` and `body` are the layout's (`Layout::detail`), where clicks on a title land.
pub fn draw(frame: &mut Frame, app: &App, tab: Tab, (bar, body): (Rect, Rect), theme: &Theme) {
    let Some(p) = app.selected_process() else {
        return;
    };
    frame.render_widget(Paragraph::new(tab_bar(tab, theme)), bar);
    let title = format!(
        " {} (PID {}){} ",
        p.name,
        p.pid,
        if p.exited { ", exited" } else { "" }
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(body);
    frame.render_widget(block, body);
    match tab {
        Tab::Overview => frame.render_widget(Paragraph::new(overview(app, p, theme)), inner),
        Tab::Connections => connections(frame, app, p, inner, theme),
        Tab::Traffic => frame.render_widget(Paragraph::new(traffic(app, p, theme)), inner),
        Tab::System => frame.render_widget(
            Paragraph::new(system(app, theme)).wrap(Wrap { trim: false }),
            inner,
        ),
    }
}

fn tab_bar(active: Tab, theme: &Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, tab) in Tab::ALL.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(TAB_DIVIDER));
        }
        let style = if tab == active {
            theme.selected().patch(theme.header())
        } else {
            Style::new()
        };
        spans.push(Span::styled(tab_label(tab), style));
    }
    Line::from(spans)
}

/// A labelled line with a download and an upload figure.
fn pair(label: &str, down: String, up: String) -> Line<'static> {
    Line::from(format!("{label:>16}  ↓ {down:<14} ↑ {up}"))
}

fn rates(label: &str, split: &Split) -> Line<'static> {
    pair(
        label,
        format_rate(split.rx_rate),
        format_rate(split.tx_rate),
    )
}

fn totals(label: &str, split: &Split) -> Line<'static> {
    pair(
        label,
        format_bytes(split.rx_bytes),
        format_bytes(split.tx_bytes),
    )
}

fn overview(app: &App, p: &ProcessUsage, theme: &Theme) -> Vec<Line<'static>> {
    let history = app.selected_history();
    let (peak, average) = (meter::peak(&history), meter::average(&history));
    vec![
        pair("rate", format_rate(p.rx_rate), format_rate(p.tx_rate)),
        pair("peak (60 s)", format_rate(peak.down), format_rate(peak.up)),
        pair(
            "average (60 s)",
            format_rate(average.down),
            format_rate(average.up),
        ),
        pair("total", format_bytes(p.rx_bytes), format_bytes(p.tx_bytes)),
        totals("Internet", &p.internet),
        totals("local", &p.local),
        limit(app, p, theme),
    ]
}

/// The process's own limit, else the rule's that governs it, with the rule named.
fn limit(app: &App, p: &ProcessUsage, theme: &Theme) -> Line<'static> {
    let label = Span::raw(format!("{:>16}  ", "limit"));
    let rule = app.membership.rules.get(&p.process());
    match (p.limit, rule) {
        (Some(limit), _) => Line::from(vec![
            label,
            Span::styled(limit.to_string(), theme.limit()),
            Span::raw(" (this process)"),
        ]),
        (None, Some((name, limit))) => Line::from(vec![
            label,
            Span::styled(limit.to_string(), theme.limit()),
            Span::raw(format!(" (rule {name})")),
        ]),
        (None, None) => Line::from(vec![label, Span::styled("none", theme.limit())]),
    }
}

fn connections(frame: &mut Frame, app: &App, p: &ProcessUsage, area: Rect, theme: &Theme) {
    let connections: Vec<_> = app
        .snapshot()
        .connections
        .iter()
        .filter(|c| c.pid == p.pid)
        .collect();
    if connections.is_empty() {
        frame.render_widget(
            Paragraph::new("no connection carried data while watched").style(theme.fading()),
            area,
        );
        return;
    }
    let header = Row::new([
        "PROTO",
        "LOCAL",
        "REMOTE",
        "STATE",
        "↓ RATE",
        "↑ RATE",
        "↓ TOTAL",
        "↑ TOTAL",
        "WHERE",
    ])
    .style(theme.header());
    let rows = connections.iter().skip(app.detail_offset).map(|c| {
        Row::new([
            match c.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            }
            .to_owned(),
            c.local.to_string(),
            c.remote.to_string(),
            c.state.clone(),
            format_rate(c.rx_rate),
            format_rate(c.tx_rate),
            format_bytes(c.rx_bytes),
            format_bytes(c.tx_bytes),
            match c.locality {
                Locality::Internet => "Internet",
                Locality::Local => "local",
            }
            .to_owned(),
        ])
    });
    let widths = [5, 22, 22, 11, 11, 11, 9, 9, 8].map(Constraint::Length);
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

fn traffic(app: &App, p: &ProcessUsage, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = vec![
        rates("Internet rate", &p.internet),
        totals("Internet total", &p.internet),
        rates("local rate", &p.local),
        totals("local total", &p.local),
        Line::from(""),
        Line::from(Span::styled("  interfaces (all processes)", theme.header())),
    ];
    for i in app
        .snapshot()
        .interfaces
        .iter()
        .filter(|i| i.rx_bytes + i.tx_bytes > 0)
    {
        lines.push(pair(
            &i.name,
            format_rate(i.rx_rate),
            format_rate(i.tx_rate),
        ));
    }
    lines
}

fn system(app: &App, theme: &Theme) -> Vec<Line<'static>> {
    match &app.details {
        None => vec![Line::from(Span::styled(
            "no longer readable in /proc (exited, or not yours)",
            theme.fading(),
        ))],
        Some(d) => [
            ("command line", d.cmdline.clone()),
            ("executable", d.exe.clone()),
            ("directory", d.cwd.clone()),
            ("user", d.user.clone()),
            ("memory", format_bytes(d.memory)),
            ("threads", d.threads.to_string()),
        ]
        .into_iter()
        .map(|(label, value)| Line::from(format!("{label:>14}  {value}")))
        .collect(),
    }
}
