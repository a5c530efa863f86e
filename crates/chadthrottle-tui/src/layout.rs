//! Where things go on screen, and what a click there lands on. Everything here is a
//! function of the terminal size (and whether a banner shows), so the screens draw into
//! the same rectangles that the mouse handler hit-tests.

use crate::mode::Tab;
use crate::sort::Column;
use ratatui::layout::{Constraint, Layout as Split, Rect};

/// The frame's three bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Why limits cannot be set, or what the usage source lacks.
    pub banner: Option<Rect>,
    /// The process table, the graph or the detail.
    pub main: Rect,
    /// Message, filter and key hints.
    pub status: Rect,
}

/// What a click in the process table lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableTarget {
    Header(Column),
    /// The `n`th row shown (0 is the one under the header), not counting the scroll.
    Row(usize),
}

impl Layout {
    pub fn new(width: u16, height: u16, banner: bool) -> Layout {
        let banner_lines = u16::from(banner);
        let [banner, main, status] = Split::vertical([
            Constraint::Length(banner_lines),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(Rect::new(0, 0, width, height));
        Layout {
            banner: (banner_lines > 0).then_some(banner),
            main,
            status,
        }
    }

    /// Table rows that fit under the header.
    pub fn table_rows(&self) -> usize {
        usize::from(self.main.height.saturating_sub(1))
    }

    pub fn table_target(&self, x: u16, y: u16) -> Option<TableTarget> {
        let table = self.main;
        if y == table.y {
            column_at(table, x).map(TableTarget::Header)
        } else if y > table.y && y < table.y + table.height {
            Some(TableTarget::Row(usize::from(y - table.y - 1)))
        } else {
            None
        }
    }

    /// The detail view's tab bar (one line) and the body under it.
    pub fn detail(&self) -> (Rect, Rect) {
        let [bar, body] =
            Split::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(self.main);
        (bar, body)
    }

    /// The tab whose title is under (`x`, `y`) in the detail's tab bar.
    pub fn tab_at(&self, x: u16, y: u16) -> Option<Tab> {
        let (bar, _) = self.detail();
        if y != bar.y {
            return None;
        }
        let x = x.checked_sub(bar.x)?;
        let mut left = 0;
        for tab in Tab::ALL {
            let width = cells(&tab_label(tab));
            if x >= left && x < left + width {
                return Some(tab);
            }
            left += width + cells(TAB_DIVIDER);
        }
        None
    }
}

/// What separates two tab titles in the bar.
pub const TAB_DIVIDER: &str = "│";

/// A tab's title as the bar shows it: padded by a space each side.
pub fn tab_label(tab: Tab) -> String {
    format!(" {} ", tab.title())
}

fn cells(text: &str) -> u16 {
    u16::try_from(text.chars().count()).unwrap_or(u16::MAX)
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
pub fn column_widths(total: u16) -> Vec<(Column, u16)> {
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

/// The column under screen column `x` in `table`'s header (columns are one cell apart).
fn column_at(table: Rect, x: u16) -> Option<Column> {
    let x = x.checked_sub(table.x)?;
    let mut left = 0;
    for (column, w) in column_widths(table.width) {
        if x >= left && x < left + w {
            return Some(column);
        }
        left += w + 1;
    }
    None
}

/// A `width` × `height` box in the middle of `area` (cut to fit), for popups.
pub fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_banner_takes_the_first_line_and_the_status_bar_the_last() {
        let plain = Layout::new(80, 24, false);
        assert_eq!(plain.banner, None);
        assert_eq!((plain.main.y, plain.main.height), (0, 23));
        assert_eq!(plain.status.y, 23);
        assert_eq!(plain.table_rows(), 22);
        let with_banner = Layout::new(80, 24, true);
        assert_eq!(with_banner.banner.map(|b| b.y), Some(0));
        assert_eq!(with_banner.main.y, 1);
        assert_eq!(with_banner.table_rows(), 21);
    }

    #[test]
    fn a_click_in_the_table_finds_its_header_or_row() {
        let layout = Layout::new(100, 10, true);
        // PID is 7 wide, then a space, then NAME
        assert_eq!(
            layout.table_target(0, 1),
            Some(TableTarget::Header(Column::Pid))
        );
        assert_eq!(
            layout.table_target(8, 1),
            Some(TableTarget::Header(Column::Name))
        );
        assert_eq!(layout.table_target(7, 1), None, "between two columns");
        assert_eq!(layout.table_target(3, 2), Some(TableTarget::Row(0)));
        assert_eq!(layout.table_target(3, 8), Some(TableTarget::Row(6)));
        assert_eq!(layout.table_target(3, 9), None, "the status bar");
        assert_eq!(layout.table_target(3, 0), None, "the banner");
    }

    #[test]
    fn a_click_on_the_tab_bar_finds_the_title_under_it() {
        let layout = Layout::new(110, 14, false);
        // " Overview │ Connections │ Traffic │ System "
        assert_eq!(layout.tab_at(0, 0), Some(Tab::Overview));
        assert_eq!(layout.tab_at(9, 0), Some(Tab::Overview));
        assert_eq!(layout.tab_at(10, 0), None, "the divider");
        assert_eq!(layout.tab_at(11, 0), Some(Tab::Connections));
        assert_eq!(layout.tab_at(40, 0), Some(Tab::System));
        assert_eq!(layout.tab_at(50, 0), None, "past the last title");
        assert_eq!(layout.tab_at(3, 1), None, "below the bar");
    }

    #[test]
    fn a_popup_is_centred_and_cut_to_the_area() {
        let area = Rect::new(0, 0, 80, 24);
        assert_eq!(popup(area, 64, 14), Rect::new(8, 5, 64, 14));
        assert_eq!(popup(area, 90, 30), area);
    }
}
