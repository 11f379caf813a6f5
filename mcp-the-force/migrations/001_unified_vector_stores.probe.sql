SELECT -- 1 when vector_stores has the unified columns (whatever created it), else 0
    CASE WHEN (
        SELECT count(*)
        FROM pragma_table_info('vector_stores')
        WHERE name IN (
            'vector_store_id', 'name', 'session_id', 'provider', 'provider_metadata',
            'is_protected', 'is_active', 'created_at', 'expires_at', 'updated_at',
            'document_count', 'rollover_from'
        )
    ) = 12 THEN 1 ELSE 0 END AS applied;
