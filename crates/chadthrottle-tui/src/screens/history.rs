//! The History view (`u`): what each application moved over the range — today, 7 or 30
//! days, as the daemon recorded it — busiest first, each with a bar per UTC day, and the
//! selected application's days as a bar chart; or, in one line, why there is nothing to
//! show (no database, or one that cannot be read).

use crate::app::App;
use crate::history::{History, HistoryAnswer};
use crate::theme::Theme;
use chadthrottle_core::rate::format_bytes;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Borders, Paragraph, Row, Table};

/// One day's height in a row's day bars, from none to the busiest day of any application.
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The chart's height, border included.
const CHART_HEIGHT: u16 = 9;

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let history = &app.history;
    let title = format!(
        " Usage {}, per application, busiest first (Tab: {}) ",
        history.range.title(),
        history.range.next().title()
    );
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(title).style(theme.header()), head);
    let one_line = |text: String, style: Style| Paragraph::new(text).style(style);
    match &history.answer {
        None => frame.render_widget(one_line(" reading…".into(), theme.fading()), body),
        Some(HistoryAnswer::Missing { path }) => frame.render_widget(
            one_line(
                format!(
                    " no usage history: {path} does not exist; start the daemon: \
                     sudo systemctl enable --now chadthrottle (or sudo chadthrottle daemon)"
                ),
                theme.error(),
            ),
            body,
        ),
        Some(HistoryAnswer::Unreadable { path, error }) => frame.render_widget(
            one_line(
                format!(" cannot read the usage history {path}: {error}"),
                theme.error(),
            ),
            body,
        ),
        Some(HistoryAnswer::Rows { note, apps, .. }) if apps.is_empty() => {
            let text = format!(
                " nothing recorded {}{}",
                history.range.title(),
                note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
            );
            frame.render_widget(one_line(text, theme.fading()), body);
        }
        Some(HistoryAnswer::Rows { note, .. }) => rows(frame, history, note, body, theme),
    }
}

fn rows(frame: &mut Frame, history: &History, note: &Option<String>, area: Rect, theme: &Theme) {
    let note_height = u16::from(note.is_some());
    let chart_height = CHART_HEIGHT.min(area.height.saturating_sub(3 + note_height));
    let [note_area, table_area, chart_area] = Layout::vertical([
        Constraint::Length(note_height),
        Constraint::Min(2),
        Constraint::Length(chart_height),
    ])
    .areas(area);
    if let Some(note) = note {
        frame.render_widget(
            Paragraph::new(format!(" {note}")).style(theme.fading()),
            note_area,
        );
    }
    let days = history.days();
    let daily: Vec<Vec<u64>> = history.apps().iter().map(|a| a.daily(&days)).collect();
    let busiest_day = daily.iter().flatten().copied().max().unwrap_or(0);
    let bars_width = u16::try_from(days.len()).unwrap_or(u16::MAX).max(4);
    let widths = [
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(bars_width),
    ];
    let header =
        Row::new(["APPLICATION", "↓ TOTAL", "↑ TOTAL", "TOTAL", "DAYS"]).style(theme.header());
    let visible = usize::from(table_area.height.saturating_sub(1)).max(1);
    let offset = (history.selected + 1).saturating_sub(visible);
    let table_rows = history
        .apps()
        .iter()
        .zip(&daily)
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(at, (app, days))| {
            let row = Row::new([
                app.name(),
                format_bytes(app.totals.rx_bytes),
                format_bytes(app.totals.tx_bytes),
                format_bytes(app.totals.total()),
                day_bars(days, busiest_day),
            ]);
            if at == history.selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    frame.render_widget(
        Table::new(table_rows, widths)
            .header(header)
            .column_spacing(1),
        table_area,
    );
    if let Some(selected) = history.selected_app() {
        let values = selected.daily(&days);
        chart(frame, &selected.name(), &days, &values, chart_area, theme);
    }
}

/// A character per day, its height the day's bytes against the busiest day's.
fn day_bars(days: &[u64], busiest: u64) -> String {
    let top = LEVELS.len() as u64 - 1;
    days.iter()
        .map(|&bytes| {
            // a day with any traffic shows at least the lowest bar
            let level = match bytes {
                0 => 0,
                _ => (bytes.saturating_mul(top) / busiest.max(1)).max(1),
            };
            LEVELS[usize::try_from(level).unwrap_or(LEVELS.len() - 1)]
        })
        .collect()
}

/// The selected application's days as bars, labelled with the day where they are wide
/// enough to hold it.
fn chart(
    frame: &mut Frame,
    name: &str,
    days: &[String],
    values: &[u64],
    area: Rect,
    theme: &Theme,
) {
    if area.height < 3 || days.is_empty() {
        return;
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {name}: by UTC day "));
    let inner = block.inner(area);
    let count = u16::try_from(days.len()).unwrap_or(u16::MAX);
    let bar_width = (inner.width / count).saturating_sub(1).clamp(1, 10);
    let bars: Vec<Bar> = days
        .iter()
        .zip(values)
        .map(|(day, &bytes)| {
            // `MM-DD`, else the day of the month, else none (one column cannot hold it)
            let label = match bar_width {
                5.. => day.get(5..).unwrap_or(day),
                2..=4 => day.get(8..).unwrap_or(day),
                _ => "",
            };
            Bar::default()
                .value(bytes)
                .text_value(format_bytes(bytes))
                .label(Line::from(label.to_owned()))
                .style(theme.graph_download())
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .block(block)
            .data(BarGroup::default().bars(&bars))
            .bar_width(bar_width)
            .bar_gap(1),
        area,
    );
}
