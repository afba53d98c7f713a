// Drag and drop for the product media list: dropping an item renumbers the position fields and
// submits the order form. Without this script the numbers are edited by hand.
(function () {
  var list = document.getElementById('media-list');
  if (!list) return;
  var dragged = null;
  list.addEventListener('dragstart', function (e) {
    dragged = e.target.closest('li');
    e.dataTransfer.effectAllowed = 'move';
  });
  list.addEventListener('dragover', function (e) {
    e.preventDefault();
    var over = e.target.closest('li');
    if (!dragged || !over || over === dragged) return;
    var box = over.getBoundingClientRect();
    var after = (e.clientY - box.top) > box.height / 2;
    list.insertBefore(dragged, after ? over.nextSibling : over);
  });
  list.addEventListener('drop', function (e) {
    e.preventDefault();
    var items = list.querySelectorAll('li');
    for (var i = 0; i < items.length; i++) {
      items[i].querySelector('.media-pos').value = String(i + 1);
    }
    dragged = null;
    document.getElementById('media-order').submit();
  });
})();
