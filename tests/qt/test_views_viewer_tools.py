"""The viewer's tools (issue 15): the value under the cursor, fit-to-window, A/B against a pinned frame."""
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from views_helpers import fake_plan, feed, shown as _shown




def test_value_under_the_cursor(qtbot, store, viewer):
    out = feed(store, fake_plan(50), chunk=50)
    viewer.select_frame(7)
    _shown(qtbot, viewer, 7)
    t = viewer.tools
    x, y, values = t.value_at(5.5, 2.2)  # image column 5, row 2: the latent is 8x8, as the image
    assert (x, y) == (5, 2)
    assert values == pytest.approx(out[7][:, 2, 5].tolist())
    assert t.value_at(-1, 0) is None and t.value_at(8, 0) is None
    # a real mouse move over the image's centre shows that pixel's values
    centre = viewer.image_item.mapToScene(QPointF(3.5, 4.5))
    t._hover(centre)
    text = t.readout.text()
    assert text.startswith("x 3  y 4") and "c0 " in text and "c3 " in text


def test_fit_after_zoom(qtbot, store, viewer):
    feed(store, fake_plan(20), chunk=20)
    _shown(qtbot, viewer, 0)
    vb = viewer.view_box
    fitted = vb.viewRange()
    vb.scaleBy((0.2, 0.2))
    vb.translateBy((2, 2))
    assert vb.viewRange() != fitted
    QTest.keyClick(viewer, Qt.Key.Key_F)  # the viewer's key
    assert vb.viewRange()[0] == pytest.approx(fitted[0], abs=0.05)
    vb.scaleBy((0.3, 0.3))
    viewer.tools.fit_button.click()
    assert vb.viewRange()[1] == pytest.approx(fitted[1], abs=0.05)

    class DoubleClick:  # the scene's click event, as pyqtgraph hands it over
        def double(self):
            return True

        def button(self):
            return Qt.MouseButton.LeftButton

        def accept(self):
            pass
    vb.scaleBy((0.3, 0.3))
    viewer.image_view.scene().sigMouseClicked.emit(DoubleClick())
    assert vb.viewRange()[0] == pytest.approx(fitted[0], abs=0.05)


def test_pin_and_flip(qtbot, store, viewer):
    feed(store, fake_plan(40), chunk=40)
    _shown(qtbot, viewer, 0)
    t = viewer.tools
    assert not t.flip_button.isEnabled()
    viewer.select_frame(30)
    QTest.keyClick(viewer, Qt.Key.Key_P)
    assert t.pinned == 30 and t.flip_button.isEnabled() and "30" in t.pin_button.text()
    viewer.select_frame(5)
    QTest.keyClick(viewer, Qt.Key.Key_B)  # to B
    assert viewer.current_frame() == 30 and t.flip_button.isChecked()
    _shown(qtbot, viewer, 30)
    t.flip_button.click()  # back to A
    assert viewer.current_frame() == 5 and not t.flip_button.isChecked()
    QTest.keyClick(viewer, Qt.Key.Key_B)
    assert viewer.current_frame() == 30
    store.clear()  # a new run: the pin is gone
    assert t.pinned is None and not t.flip_button.isEnabled()
