async def test_roundtrip(store):
    assert await store.append("s1", [{"type": "human", "data": {"content": "hi"}}]) == 1
    assert await store.messages("s1") == [{"type": "human", "data": {"content": "hi"}}]
    assert await store.session_ids_list() == ["s1"]
