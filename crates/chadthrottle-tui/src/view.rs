//! Rendering: pure functions of the app state. The layout is a function of the terminal
//! size alone, so mouse handling can hit-test the same rectangles.

use crate::app::{App, Mode, Tab, process_ref};
use crate::dialog::{Field, ThrottleDialog, parse_field};
use crate::sort::Column;
use chadthrottle_core::backend::Availability;
use chadthrottle_core::locality::Locality;
use chadthrottle_core::meter;
use chadthrottle_core::rate::{format_bytes, format_rate};
use chadthrottle_core::usage::{ProcessUsage, Protocol};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table,
};

/// Where things go on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub banner: Option<Rect>,
    pub table: Rect,
    pub status: Rect,
}

pub fn layout(app: &App) -> Layout {
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    let banner_lines = u16::from(banner_text(app).is_some());
    let [banner, table, status] = Split::vertical([
        Constraint::Length(banner_lines),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Layout {
        banner: (banner_lines > 0).then_some(banner),
        table,
        status,
    }
}

/// Table rows that fit under the header.
pub fn table_rows(app: &App) -> usize {
    usize::from(layout(app).table.height.saturating_sub(1))
}

const NAME_MIN: u16 = 10;

const fn width(column: Column) -> u16 {
    match column {
        Column::Pid => 7,
        Column::Name => NAME_MIN,
        Column::DownRate | Column::UpRate => 11,
        Column::DownTotal | Column::UpTotal => 9,
        Column::Limit => 21,
    }
}

/// The columns that fit in `total` cells; totals go first, then the limit.
pub fn visible_columns(total: u16) -> Vec<Column> {
    let mut columns = Column::ALL.to_vec();
    for drop in [
        Column::UpTotal,
        Column::DownTotal,
        Column::Limit,
        Column::UpRate,
    ] {
        let needed: u16 = columns.iter().map(|&c| width(c)).sum::<u16>() + columns.len() as u16 - 1;
        if needed <= total {
            break;
        }
        columns.retain(|&c| c != drop);
    }
    columns
}

/// Each visible column with its width; the name takes what is left.
fn column_widths(total: u16) -> Vec<(Column, u16)> {
    let columns = visible_columns(total);
    let fixed: u16 = columns
        .iter()
        .filter(|&&c| c != Column::Name)
        .map(|&c| width(c))
        .sum::<u16>()
        + columns.len() as u16
        - 1;
    columns
        .into_iter()
        .map(|c| match c {
            Column::Name => (c, total.saturating_sub(fixed).max(NAME_MIN)),
            _ => (c, width(c)),
        })
        .collect()
}

/// The column under screen column `x` in the header.
pub fn column_at(app: &App, x: u16) -> Option<Column> {
    let mut left = 0;
    for (column, w) in column_widths(app.size.0) {
        if x >= left && x < left + w {
            return Some(column);
        }
        left += w + 1;
    }
    None
}

struct Theme {
    color: bool,
}

impl Theme {
    fn header(&self) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::Cyan)
        } else {
            style
        }
    }
    fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn fading(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
    fn limit(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    fn error(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    fn banner(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
}

fn cell(process: &ProcessUsage, column: Column) -> String {
    match column {
        Column::Pid => process.pid.to_string(),
        Column::Name if process.exited => format!("{} (exited)", process.name),
        Column::Name => process.name.clone(),
        Column::DownRate => format_rate(process.rx_rate),
        Column::UpRate => format_rate(process.tx_rate),
        Column::DownTotal => format_bytes(process.rx_bytes),
        Column::UpTotal => format_bytes(process.tx_bytes),
        Column::Limit => process.limit.map(|l| l.to_string()).unwrap_or_default(),
    }
}

fn banner_text(app: &App) -> Option<String> {
    app.read_only
        .as_ref()
        .map(|reason| format!(" read-only (limits cannot be set): {reason}"))
        .or_else(|| app.snapshot().note.as_ref().map(|note| format!(" {note}")))
}

pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    let layout = layout(app);
    if let (Some(area), Some(text)) = (layout.banner, banner_text(app)) {
        frame.render_widget(Paragraph::new(text).style(theme.banner()), area);
    }
    match &app.mode {
        Mode::Graph => draw_graph(frame, app, layout.table, &theme),
        Mode::Detail(tab) => draw_detail(frame, app, *tab, layout.table, &theme),
        _ => draw_table(frame, app, layout.table, &theme),
    }
    draw_status(frame, app, layout.status, &theme);
    match &app.mode {
        Mode::Throttle(dialog) => draw_dialog(frame, dialog, &theme),
        Mode::Help => draw_help(frame, &theme),
        Mode::Backends => draw_backends(frame, app, &theme),
        _ => {}
    }
}

fn draw_table(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let widths = column_widths(area.width);
    let header = Row::new(widths.iter().map(|&(c, _)| {
        let marker = if c == app.sort && app.frozen.is_none() {
            "▼"
        } else {
            ""
        };
        Cell::from(format!("{}{marker}", c.title()))
    }))
    .style(theme.header());
    let visible = usize::from(area.height.saturating_sub(1));
    let selected = app.selected;
    let rows = app.rows.iter().skip(app.offset).take(visible).map(|p| {
        let cells = widths.iter().map(|&(c, _)| {
            let text = cell(p, c);
            if c == Column::Limit {
                Cell::from(Span::styled(text, theme.limit()))
            } else {
                Cell::from(text)
            }
        });
        let mut style = Style::new();
        if p.exited {
            style = style.patch(theme.fading());
        }
        if Some(process_ref(p)) == selected {
            style = style.patch(theme.selected());
        }
        Row::new(cells).style(style)
    });
    let table = Table::new(rows, widths.iter().map(|&(_, w)| Constraint::Length(w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, area);
    if app.rows.is_empty() {
        let text = if app.filter.is_empty() {
            "no process has used the network yet"
        } else {
            "no process matches the filter"
        };
        let at = Rect {
            y: area.y + 2.min(area.height.saturating_sub(1)),
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(text).style(theme.fading()).centered(), at);
    }
}

fn draw_graph(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let Some(process) = app.selected_process() else {
        return;
    };
    let history = app.selected_history();
    let now = history.last().map_or(0, |p| p.at_ns);
    let ago = |at: u64| -((now.saturating_sub(at)) as f64 / 1e9);
    let down: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (ago(p.at_ns), p.rx_rate as f64))
        .collect();
    let up: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (ago(p.at_ns), p.tx_rate as f64))
        .collect();
    let line = |rate: u64| vec![(-60.0, rate as f64), (0.0, rate as f64)];
    let limit_down = process
        .limit
        .and_then(|l| l.down)
        .map(line)
        .unwrap_or_default();
    let limit_up = process
        .limit
        .and_then(|l| l.up)
        .map(line)
        .unwrap_or_default();
    let top = down
        .iter()
        .chain(&up)
        .chain(&limit_down)
        .chain(&limit_up)
        .map(|&(_, y)| y)
        .fold(1024.0_f64, f64::max)
        * 1.1;
    let color = |c: Color| {
        if theme.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    };
    let datasets = vec![
        Dataset::default()
            .name("↓ download")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(color(Color::Green))
            .data(&down),
        Dataset::default()
            .name("↑ upload")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(color(Color::Magenta))
            .data(&up),
        Dataset::default()
            .name("↓ limit")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(color(Color::Yellow))
            .data(&limit_down),
        Dataset::default()
            .name("↑ limit")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(color(Color::Red))
            .data(&limit_up),
    ];
    let title = format!(" {} (PID {}) — last 60 s ", process.name, process.pid);
    let chart = Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(title))
        .x_axis(
            Axis::default()
                .bounds([-60.0, 0.0])
                .labels(["-60 s", "-30 s", "now"]),
        )
        .y_axis(Axis::default().bounds([0.0, top]).labels([
            "0".to_owned(),
            format_rate((top / 2.0) as u64),
            format_rate(top as u64),
        ]));
    frame.render_widget(chart, area);
}

fn hints(app: &App) -> &'static str {
    match app.mode {
        Mode::Normal => {
            "↑↓ select  t throttle  r remove  g graph  s sort  f freeze  / filter  h help  q quit"
        }
        Mode::Filter => "type a name  Enter keep  Esc clear",
        Mode::Throttle(_) => "Tab switch field  Enter apply  Esc cancel",
        Mode::Help | Mode::Graph | Mode::Backends => "Esc back",
        Mode::Detail(_) => "Tab/←→/1-4 switch tab  ↑↓ scroll  Esc back",
    }
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    // the message first: at 80 columns the hints are what gets cut
    let mut spans = Vec::new();
    if let Some(message) = &app.message {
        let style = if message.error {
            theme.error()
        } else {
            Style::new()
        };
        spans.push(Span::styled(message.text.clone(), style));
        spans.push(Span::raw("  "));
    }
    if app.mode == Mode::Filter || !app.filter.is_empty() {
        spans.push(Span::styled(format!("/{}  ", app.filter), theme.header()));
    }
    spans.push(Span::raw(hints(app)));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

fn draw_dialog(frame: &mut Frame, dialog: &ThrottleDialog, theme: &Theme) {
    let area = centered(frame.area(), 64, 14);
    frame.render_widget(Clear, area);
    let field = |label: &str, text: &str, focused: bool| {
        let cursor = if focused { "▏" } else { "" };
        let mut lines = vec![Line::from(vec![
            Span::styled(
                format!("{label:>9}: "),
                if focused {
                    theme.header()
                } else {
                    Style::new()
                },
            ),
            Span::raw(format!("{text}{cursor}")),
        ])];
        match parse_field(text).err() {
            Some(error) => lines.push(Line::from(Span::styled(
                format!("  {error}"),
                theme.error(),
            ))),
            None => lines.push(Line::from(if text.trim().is_empty() {
                "           unlimited"
            } else {
                ""
            })),
        }
        lines
    };
    let mut lines = field(
        "Download",
        &dialog.download,
        dialog.focus == Field::Download,
    );
    lines.extend(field(
        "Upload",
        &dialog.upload,
        dialog.focus == Field::Upload,
    ));
    lines.push(Line::from(""));
    lines.push(Line::from(
        "500K 1.5M 1G (bytes/s)  8mbit (bits/s)  0 blocks  empty: unlimited",
    ));
    let title = format!(" Throttle {} (PID {}) ", dialog.name, dialog.process.pid);
    let paragraph = Paragraph::new(lines)
        .block(Block::default().borders(Borders::ALL).title(title))
        .wrap(ratatui::widgets::Wrap { trim: false });
    frame.render_widget(paragraph, area);
}

fn draw_help(frame: &mut Frame, theme: &Theme) {
    let keys = [
        (
            "↑ ↓ j k PgUp PgDn",
            "select a process (or the mouse; the wheel scrolls)",
        ),
        ("t", "throttle it: download and upload limits"),
        ("r", "remove its limit"),
        ("g", "graph of its last 60 s, with the limit"),
        (
            "Enter",
            "its detail: overview, connections, traffic, system",
        ),
        ("l", "all / Internet / local traffic in the table"),
        ("i", "one interface's traffic only (next, then all)"),
        ("b", "backends: which can limit here, and why not"),
        (
            "s / click a header",
            "sort by the next column / that column",
        ),
        ("f", "freeze the order (rows stop moving)"),
        ("/", "filter by name"),
        ("h ?", "this help"),
        ("q Esc Ctrl-C", "quit (limits stay in the kernel)"),
    ];
    let lines: Vec<Line> = keys
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>20}  "), theme.header()),
                Span::raw(*what),
            ])
        })
        .collect();
    let area = centered(frame.area(), 76, keys.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        area,
    );
}

/// The tab whose title is under screen column `x` in the tab bar.
pub fn tab_at(x: u16) -> Option<Tab> {
    let mut left = 0;
    for tab in Tab::ALL {
        // " Title " and a divider
        let width = tab.title().len() as u16 + 2;
        if x >= left && x < left + width {
            return Some(tab);
        }
        left += width + 1;
    }
    None
}

fn tab_bar(active: Tab, theme: &Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, tab) in Tab::ALL.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("│"));
        }
        let style = if tab == active {
            theme.selected().patch(theme.header())
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!(" {} ", tab.title()), style));
    }
    Line::from(spans)
}

fn pair(label: &str, down: String, up: String) -> Line<'static> {
    Line::from(format!("{label:>16}  ↓ {down:<14} ↑ {up}"))
}

fn draw_detail(frame: &mut Frame, app: &App, tab: Tab, area: Rect, theme: &Theme) {
    let Some(p) = app.selected_process() else {
        return;
    };
    let [bar, body] = Split::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
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
        Tab::Overview => {
            let history = app.selected_history();
            let (peak, average) = (meter::peak(&history), meter::average(&history));
            let lines = vec![
                pair("rate", format_rate(p.rx_rate), format_rate(p.tx_rate)),
                pair("peak (60 s)", format_rate(peak.down), format_rate(peak.up)),
                pair(
                    "average (60 s)",
                    format_rate(average.down),
                    format_rate(average.up),
                ),
                pair("total", format_bytes(p.rx_bytes), format_bytes(p.tx_bytes)),
                pair(
                    "Internet",
                    format_bytes(p.internet.rx_bytes),
                    format_bytes(p.internet.tx_bytes),
                ),
                pair(
                    "local",
                    format_bytes(p.local.rx_bytes),
                    format_bytes(p.local.tx_bytes),
                ),
                Line::from(vec![
                    Span::raw(format!("{:>16}  ", "limit")),
                    Span::styled(
                        p.limit.map_or("none".to_owned(), |l| l.to_string()),
                        theme.limit(),
                    ),
                ]),
            ];
            frame.render_widget(Paragraph::new(lines), inner);
        }
        Tab::Connections => {
            let connections: Vec<_> = app
                .snapshot()
                .connections
                .iter()
                .filter(|c| c.pid == p.pid)
                .collect();
            if connections.is_empty() {
                frame.render_widget(
                    Paragraph::new("no connection carried data while watched")
                        .style(theme.fading()),
                    inner,
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
                inner,
            );
        }
        Tab::Traffic => {
            let mut lines = vec![
                pair(
                    "Internet rate",
                    format_rate(p.internet.rx_rate),
                    format_rate(p.internet.tx_rate),
                ),
                pair(
                    "Internet total",
                    format_bytes(p.internet.rx_bytes),
                    format_bytes(p.internet.tx_bytes),
                ),
                pair(
                    "local rate",
                    format_rate(p.local.rx_rate),
                    format_rate(p.local.tx_rate),
                ),
                pair(
                    "local total",
                    format_bytes(p.local.rx_bytes),
                    format_bytes(p.local.tx_bytes),
                ),
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
            frame.render_widget(Paragraph::new(lines), inner);
        }
        Tab::System => {
            let lines = match &app.details {
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
            };
            frame.render_widget(
                Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
                inner,
            );
        }
    }
}

fn draw_backends(frame: &mut Frame, app: &App, theme: &Theme) {
    let mut lines = Vec::new();
    if app.backends.is_empty() {
        lines.push(Line::from("checking…"));
    }
    for (backend, availability) in &app.backends {
        let directions = match (backend.directions.up, backend.directions.down) {
            (true, true) => "up+down",
            (true, false) => "up",
            _ => "down",
        };
        let (state, style) = match availability {
            Availability::Available => ("available".to_owned(), Style::new()),
            Availability::Unavailable(reason) => (format!("unavailable: {reason}"), theme.error()),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<10}", backend.name), theme.header()),
            Span::raw(format!(
                " priority {:<3} {directions:<8} ",
                backend.priority
            )),
            Span::styled(state, style),
        ]));
        lines.push(Line::from(format!("           {}", backend.summary)));
    }
    // wrapped lines take more rows: count them at the popup's inner width
    let inner_width = 88usize
        .min(usize::from(frame.area().width.saturating_sub(2)))
        .max(1);
    let rows: usize = lines
        .iter()
        .map(|line| line.width().max(1).div_ceil(inner_width))
        .sum();
    let area = centered(
        frame.area(),
        90,
        u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2),
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Backends ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::fixtures::{app_with, usage};
    use crate::keys::key;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        app.handle(Event::Resize(width, height));
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        terminal.backend().to_string()
    }

    fn press(app: &mut App, keys: &str) {
        for c in keys.chars() {
            app.handle(Event::Key(key(KeyCode::Char(c))));
        }
    }

    #[test]
    fn empty() {
        insta::assert_snapshot!(screen(&mut app_with(vec![]), 100, 12));
    }

    #[test]
    fn one_process() {
        insta::assert_snapshot!(screen(
            &mut app_with(vec![usage(4242, "curl", 1 << 20)]),
            100,
            8
        ));
    }

    #[test]
    fn five_hundred_processes_scroll_with_the_selection() {
        let processes = (1..=500)
            .map(|pid| usage(pid, &format!("proc{pid}"), u64::from(pid) * 1000))
            .collect();
        let mut app = app_with(processes);
        for _ in 0..30 {
            app.handle(Event::Key(key(KeyCode::Down)));
        }
        assert_eq!(app.selected.unwrap().pid, 470);
        insta::assert_snapshot!(screen(&mut app, 100, 16));
    }

    #[test]
    fn at_80x24_the_totals_give_way() {
        let processes = (1..=30)
            .map(|pid| usage(pid, "firefox-esr", u64::from(pid) * 70_000))
            .collect();
        let mut app = app_with(processes);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "1M");
        app.handle(Event::Key(key(KeyCode::Enter)));
        let text = screen(&mut app, 80, 24);
        assert!(!text.contains("↑ TOTAL"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_blocked_direction_reads_as_top_prints_it() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "t0");
        app.handle(Event::Key(key(KeyCode::Enter)));
        let text = screen(&mut app, 100, 4);
        assert!(text.contains("⚡ ↓blocked ↑-"), "{text}");
    }

    #[test]
    fn throttle_dialog_with_an_invalid_field() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "1.2.3M");
        app.handle(Event::Key(key(KeyCode::Tab)));
        press(&mut app, "8mbit");
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn help() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "h");
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn graph_with_the_limit_line() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "2M");
        app.handle(Event::Key(key(KeyCode::Enter)));
        press(&mut app, "g");
        insta::assert_snapshot!(screen(&mut app, 80, 20));
    }

    #[test]
    fn read_only_banner_and_refusal() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.read_only = Some("CAP_BPF missing: run with sudo".into());
        press(&mut app, "t");
        insta::assert_snapshot!(screen(&mut app, 100, 6));
    }

    #[test]
    fn detail_tabs() {
        let mut app = crate::fixtures::app_with_connections();
        app.handle(Event::Key(key(KeyCode::Enter)));
        app.handle(Event::Details(Some(
            chadthrottle_core::usage::ProcessDetails {
                pid: 4242,
                cmdline: "curl -O https://example.org/big.iso".into(),
                exe: "/usr/bin/curl".into(),
                cwd: "/home/chad".into(),
                user: "chad".into(),
                memory: 12 << 20,
                threads: 3,
            },
        )));
        let mut screens = Vec::new();
        for tab in Tab::ALL {
            app.mode = Mode::Detail(tab);
            screens.push(screen(&mut app, 110, 14));
        }
        insta::assert_snapshot!(screens.join("\n"));
    }

    #[test]
    fn clicking_a_tab_title_switches_to_it() {
        use ratatui::crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
        let mut app = crate::fixtures::app_with_connections();
        app.handle(Event::Key(key(KeyCode::Enter)));
        let click = |column| MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row: 0,
            modifiers: KeyModifiers::NONE,
        };
        app.handle(Event::Mouse(click(13)));
        assert_eq!(app.mode, Mode::Detail(Tab::Connections));
        app.handle(Event::Mouse(click(40)));
        assert_eq!(app.mode, Mode::Detail(Tab::System));
    }

    #[test]
    fn backends_screen_says_why_not() {
        use chadthrottle_core::PerDirection;
        use chadthrottle_core::backend::BackendDescriptor;
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Backends(vec![(
            BackendDescriptor {
                name: "policer",
                priority: 10,
                directions: PerDirection {
                    up: true,
                    down: true,
                },
                summary: "eBPF token buckets per process",
            },
            Availability::Unavailable("CAP_BPF missing: run with sudo".into()),
        )]));
        press(&mut app, "b");
        insta::assert_snapshot!(screen(&mut app, 100, 8));
    }

    #[test]
    fn the_wheel_scrolls_the_connection_list() {
        use ratatui::crossterm::event::{KeyModifiers, MouseEvent, MouseEventKind};
        let mut app = crate::fixtures::app_with_connections();
        app.handle(Event::Key(key(KeyCode::Enter)));
        app.handle(Event::Key(key(KeyCode::Char('2'))));
        let wheel = MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 10,
            row: 5,
            modifiers: KeyModifiers::NONE,
        };
        app.handle(Event::Mouse(wheel));
        assert_eq!(app.detail_offset, 1, "clamped to the last connection");
        let text = screen(&mut app, 110, 8);
        assert!(
            !text.contains("93.184.216.34") && text.contains("192.168.1.1:53"),
            "{text}"
        );
    }

    #[test]
    fn no_color_uses_no_colors() {
        let styled = |color: bool| {
            let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
            app.color = color;
            app.handle(Event::Resize(100, 6));
            let mut terminal = Terminal::new(TestBackend::new(100, 6)).unwrap();
            terminal.draw(|frame| draw(frame, &app)).unwrap();
            let buffer = terminal.backend().buffer().clone();
            buffer.content().iter().any(|cell| {
                cell.fg != ratatui::style::Color::Reset || cell.bg != ratatui::style::Color::Reset
            })
        };
        assert!(styled(true), "colors are used by default");
        assert!(
            !styled(false),
            "NO_COLOR: no foreground or background color anywhere"
        );
    }

    #[test]
    fn columns_drop_in_order() {
        assert_eq!(visible_columns(200).len(), 7);
        assert!(!visible_columns(80).contains(&Column::UpTotal));
        assert!(visible_columns(80).contains(&Column::Limit));
        let narrow = visible_columns(50);
        assert!(
            narrow.contains(&Column::Pid) && narrow.contains(&Column::DownRate),
            "{narrow:?}"
        );
    }
}
