SELECT -- 1 when the end state of 002 is present: vector_stores, its indexes, the
       -- active_stores view, vector_stores_set_aside and backstop_carry exactly as the
       -- forward script creates them (compared without whitespace), no other index on
       -- vector_stores, and neither the legacy stores table nor schema_version.
    CASE WHEN 1
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'table' AND name = 'backstop_carry'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATETABLEbackstop_carry(originTEXTNOTNULL,kindTEXTNOTNULL,vector_store_id,l_rowid,u_rowid,l_session_id,l_provider,l_expires_at,l_protected,l_created_at,l_updated_at,l_store_type,l_doc_count,l_is_active,u_name,u_session_id,u_provider,u_provider_metadata,u_is_protected,u_is_active,u_created_at,u_expires_at,u_updated_at,u_document_count,u_rollover_from,reason,kept_by_session_id)'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'table' AND name = 'vector_stores'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATETABLEvector_stores(vector_store_idTEXTPRIMARYKEY,nameTEXTUNIQUE,session_idTEXTUNIQUE,providerTEXTNOTNULL,provider_metadataTEXT,is_protectedINTEGERDEFAULT0,is_activeINTEGERDEFAULT1,created_atINTEGERNOTNULL,expires_atINTEGER,updated_atINTEGERNOTNULL,document_countINTEGERDEFAULT0,rollover_fromTEXT,CONSTRAINTvector_stores_name_xor_sessionCHECK((nameISNULL)<>(session_idISNULL)))'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'table' AND name = 'vector_stores_set_aside'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATETABLEvector_stores_set_aside(session_idTEXT,vector_store_idTEXT,providerTEXT,expires_atINTEGER,protectedINTEGER,created_atINTEGER,updated_atINTEGER,reasonTEXTNOTNULL,kept_by_session_idTEXT)'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'index' AND name = 'idx_vs_active_named'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATEINDEXidx_vs_active_namedONvector_stores(is_active,name)WHEREnameISNOTNULL'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'index' AND name = 'idx_vs_expires_at'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATEINDEXidx_vs_expires_atONvector_stores(expires_at)WHEREexpires_atISNOTNULL'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'index' AND name = 'idx_vs_rollover'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATEINDEXidx_vs_rolloverONvector_stores(rollover_from)WHERErollover_fromISNOTNULL'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'index' AND name = 'idx_vs_updated_at'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATEINDEXidx_vs_updated_atONvector_stores(updated_at)'
        )
        AND EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'view' AND name = 'active_stores'
                AND replace(replace(replace(replace(sql, ' ', ''), char(9), ''), char(10), ''), char(13), '')
                    = 'CREATEVIEWactive_storesASSELECTCASEWHENnameGLOB''project-conversations-*''THEN''conversation''ELSE''commit''ENDASstore_type,vector_store_idASstore_id,document_countASdoc_countFROMvector_storesWHEREis_active=1AND(nameGLOB''project-conversations-*''ORnameGLOB''project-commits-*'')'
        )
        AND (
            SELECT count(*) FROM sqlite_master
            WHERE type = 'index' AND tbl_name = 'vector_stores' AND sql IS NOT NULL
        ) = 4
        AND NOT EXISTS (
            SELECT 1 FROM sqlite_master
            WHERE type = 'table' AND name IN ('stores', 'schema_version')
        )
    THEN 1 ELSE 0 END AS applied;
