"""ThumbnailGrid and ThumbnailModel over a 10,000-step store: virtualised rendering, bounded cache, keys."""
import pytest
import torch
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from unsampler_gui.qt.thumbnail_grid import ThumbnailGrid
from unsampler_gui.qt.thumbnail_model import RawSigmaRole, ReadyRole, SigmaRole, StepRole, ThumbnailModel
from support import WAIT_MS
from views_helpers import fake_plan, feed, settle


@pytest.fixture
def grid(qtbot, store):
    g = ThumbnailGrid(store, thumb_size=48)
    qtbot.addWidget(g)
    g.resize(520, 360)
    g.show()
    qtbot.waitExposed(g)
    yield g
    g.close()
    g.shutdown()


def _paint_and_render(qtbot, grid):
    """Paint the viewport now, send the requests it made, and wait for the thumbnails."""
    model = grid.thumbnail_model()
    grid.viewport().repaint()
    model.flush()
    settle(qtbot, model)


def test_cells_exist_from_the_start_and_fill_in_once_per_chunk(qtbot, store, grid):
    """Every planned step has its cell as soon as the run starts (no relayout while frames arrive);
    each chunk that arrives is one dataChanged, never one signal per item."""
    model = grid.thumbnail_model()
    inserts, changes = [], []
    model.rowsInserted.connect(lambda parent, a, b: inserts.append((a, b)))
    model.dataChanged.connect(lambda a, b, roles: changes.append((a.row(), b.row())))
    plan = fake_plan(10000)
    store.begin(plan)
    assert model.rowCount() == 10000 and store.available == 0
    assert model.index(9999).data(Qt.ItemDataRole.DecorationRole) == model.placeholder
    feed(store, plan, chunk=500, begin=False)
    assert inserts == []
    arrivals = [c for c in changes if c[1] - c[0] == 499]  # (the others: thumbnails the paint asked for)
    assert arrivals[0] == (0, 499) and arrivals[-1] == (9500, 9999) and len(arrivals) == 20
    idx = model.index(250)
    assert idx.data(StepRole) == 250
    assert idx.data(SigmaRole) == pytest.approx(store.sigma(250))
    assert idx.data(RawSigmaRole) == pytest.approx(store.raw_sigma(250))
    assert idx.data(ReadyRole) is False
    assert model.rowCount(idx) == 0
    _paint_and_render(qtbot, grid)


def test_only_visible_rows_are_rendered_while_scrolling_end_to_end(qtbot, store, grid):
    model = grid.thumbnail_model()
    model.cache.max_items = 300  # small, to show that it stays bounded
    requested = []
    model.renderRequested.connect(requested.extend)
    feed(store, fake_plan(10000), chunk=512)
    qtbot.waitUntil(lambda: grid.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    _paint_and_render(qtbot, grid)
    requested.clear()  # rows asked for while the layout was growing were all visible too, but start clean

    seen = set()
    bar = grid.verticalScrollBar()
    positions = 0
    value = 0
    while True:
        bar.setValue(value)
        visible = set(grid.visible_rows())
        assert visible, "nothing visible?"
        seen |= visible
        _paint_and_render(qtbot, grid)
        positions += 1
        if value >= bar.maximum():
            break
        value = min(bar.maximum(), value + bar.pageStep())
    assert 9999 in seen and 0 in seen
    assert set(requested) <= seen, sorted(set(requested) - seen)[:10]
    assert len(requested) == len(set(requested))  # each row asked for once
    assert len(seen) == 10000  # page by page we really went through everything...
    assert len(model.cache) <= 300  # ...and memory stayed flat
    assert model.cache.bytes <= 300 * 48 * 48 * 3
    last = grid.visible_rows()
    assert all(model.index(r).data(ReadyRole) for r in last)  # the page on screen is rendered


def test_jumping_renders_only_the_destination(qtbot, store, grid):
    model = grid.thumbnail_model()
    requested = []
    model.renderRequested.connect(requested.extend)
    feed(store, fake_plan(10000), chunk=1000)
    qtbot.waitUntil(lambda: grid.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    _paint_and_render(qtbot, grid)
    top = set(grid.visible_rows())
    requested.clear()
    grid.select_frame(7777)  # possibly before the batched layout has placed row 7777
    qtbot.waitUntil(lambda: 7777 in grid.visible_rows(), timeout=WAIT_MS)
    _paint_and_render(qtbot, grid)
    visible = set(grid.visible_rows())
    assert 7777 in visible
    assert set(requested) <= visible and len(requested) <= len(visible)
    assert not (set(requested) & top)


def test_thumbnails_are_qimages_of_the_right_size(qtbot, store, grid, tmp_path):
    feed(store, fake_plan(100), chunk=50)
    _paint_and_render(qtbot, grid)
    img = grid.thumbnail_model().index(0).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(img, QImage) and not img.isNull() and img.width() == 48 and img.height() == 48
    assert img is not grid.thumbnail_model().placeholder
    assert grid.grab().save(str(tmp_path / "grid.png"))  # a picture to look at when this test fails


def test_selection_and_keys(qtbot, store, grid):
    feed(store, fake_plan(1000), chunk=250)
    qtbot.waitUntil(lambda: grid.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    got = []
    grid.frameSelected.connect(got.append)
    grid.select_frame(10)
    assert got == [10] and grid.current_frame() == 10
    grid.select_frame(10)
    assert got == [10]  # no change, no signal
    grid.setFocus()
    QTest.keyClick(grid, Qt.Key.Key_Right)
    assert grid.current_frame() == 11
    QTest.keyClick(grid, Qt.Key.Key_End)
    assert grid.current_frame() == 999
    QTest.keyClick(grid, Qt.Key.Key_Home)
    assert grid.current_frame() == 0
    QTest.keyClick(grid, Qt.Key.Key_Down)
    per_row = grid.current_frame()
    assert per_row > 1  # a whole row down
    QTest.keyClick(grid, Qt.Key.Key_PageDown)
    assert grid.current_frame() > per_row
    assert got[-1] == grid.current_frame()
    _paint_and_render(qtbot, grid)


def test_settings_change_and_new_run_drop_old_thumbnails(qtbot, store, grid):
    model = grid.thumbnail_model()
    feed(store, fake_plan(200), chunk=100)
    _paint_and_render(qtbot, grid)
    assert len(model.cache) > 0
    changed = []
    model.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row())))
    grid.set_display(2, "auto")
    assert len(model.cache) == 0 and changed == [(0, 199)]  # one signal for every row
    grid.viewport().repaint()
    model.flush()  # tasks for the old run are in flight...
    plan2 = fake_plan(50)
    feed(store, plan2, torch.zeros(plan2.out_shape), chunk=50)  # ...when a new run (of flat frames) begins
    assert len(model.cache) == 0
    _paint_and_render(qtbot, grid)
    assert 0 < len(model.cache) <= 50
    assert model.settings.mode == 2 and model.settings.contrast == "auto"
    for row in range(50):  # whatever is cached is the new run's: flat grey, never the old noise
        img = model.cache.get(row)
        if img is not None:
            assert img.pixelColor(0, 0) == img.pixelColor(img.width() - 1, img.height() - 1)
            assert img.pixelColor(0, 0).red() == 128


def test_batch_item_and_time_index(qtbot, store, grid):
    feed(store, fake_plan(30, batch=2, family="WAN21_T2V", spatial=(6, 10)), chunk=10)
    grid.set_batch_item(5)
    grid.set_time_index(9)
    s = grid.thumbnail_model().settings
    assert s.item == 1 and s.time_index == 2  # clamped to the batch and the video length
    _paint_and_render(qtbot, grid)
    img = grid.thumbnail_model().index(0).data(Qt.ItemDataRole.DecorationRole)
    assert (img.width(), img.height()) == (48, 29)  # aspect ratio of the 6x10 latent


def test_model_without_a_view_renders_nothing(qtbot, store):
    model = ThumbnailModel(store)
    requested = []
    model.renderRequested.connect(requested.extend)
    feed(store, fake_plan(10000), chunk=1000)
    model.flush()
    settle(qtbot, model)
    assert requested == [] and model.rowCount(QModelIndex()) == 10000
    model.shutdown()


def _first_row(grid):
    """The rects (in the grid's own coordinates) of the cells in the grid's first row."""
    model = grid.thumbnail_model()
    off = grid.viewport().mapTo(grid, grid.viewport().rect().topLeft())
    rects = []
    for r in range(model.row_count()):
        rc = grid.visualRect(model.index(r)).translated(off)
        if rects and rc.top() != rects[0].top():
            break
        rects.append(rc)
    return rects


@pytest.mark.parametrize("steps", [20, 30, 10000])
def test_the_columns_fill_the_width_at_any_width(qtbot, store, grid, steps):
    """No empty strip at the right: the cells of a row reach the scroll bar, whatever the width and the number
    of frames (short runs with no scrolling too); the pixels that do not divide evenly are split left and right."""
    from PySide6.QtCore import QPoint

    feed(store, fake_plan(steps), chunk=512)
    smallest = grid._delegate.cell_size().width()
    for width in (300, 517, 640, 803, 1000, 1234, 700):
        grid.resize(width, 360)
        qtbot.waitUntil(lambda: grid.viewport().width() <= width, timeout=WAIT_MS)
        row = _first_row(grid)
        sb_left = grid.verticalScrollBar().mapTo(grid, QPoint(0, 0)).x()
        frame = grid.frameWidth()
        avail = sb_left - frame  # from the frame's inner edge to the scroll bar
        cols = len(row)
        assert cols == min(steps, max(1, (avail - 1) // (smallest + 4)))  # as many columns as fit, no fewer
        assert len({rc.width() for rc in row}) == 1
        assert all(b.left() == a.right() + 1 for a, b in zip(row, row[1:]))  # side by side
        right, left = sb_left - 1 - row[-1].right(), row[0].left() - frame
        assert 0 <= left and 0 <= right
        assert right + left <= cols, (width, cols, left, right)  # rounding only (and the one pixel QListView keeps)
        assert right <= left + 2


@pytest.mark.parametrize("size", [(1600, 1000), (1280, 720), (1024, 600)])
def test_the_windows_grid_has_no_empty_strip(window, qtbot, run_and_wait, set_steps, size):
    from PySide6.QtCore import QPoint

    set_steps(window, 20)
    run_and_wait(window)
    window.resize(*size)
    grid = window.grid
    qtbot.waitUntil(lambda: grid.isVisible() and len(_first_row(grid)) > 1, timeout=WAIT_MS)
    row = _first_row(grid)
    sb_left = grid.verticalScrollBar().mapTo(grid, QPoint(0, 0)).x()
    assert sb_left - 1 - row[-1].right() + row[0].left() - grid.frameWidth() <= len(row)


def test_the_bars_info_line_never_widens_the_grid(qtbot, store):
    from unsampler_gui.qt.thumbnail_grid import GridPane

    g = ThumbnailGrid(store, thumb_size=48)
    pane = GridPane(g)
    qtbot.addWidget(pane)
    pane.show()
    before = pane.minimumSizeHint().width()
    feed(store, fake_plan(10000), chunk=2000)
    qtbot.waitUntil(lambda: "10000 frames" in pane.info.text(), timeout=WAIT_MS)
    pane._show_info(9999)  # the longest line: the frame, its step and sigma
    assert pane.minimumSizeHint().width() == before
    assert pane.info.toolTip() == pane.info.text()
    pane.close()
    g.shutdown()
