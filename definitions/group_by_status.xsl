<?xml version="1.0" encoding="UTF-8"?>
<!--
  Preset: rows grouped under their `status`, each group with its row count, groups in
  alphabetical order, rows in export order (xslt_scope: document: it needs every row).

    format: xml
    format_options: {xslt: definitions/group_by_status.xsl, xslt_scope: document}

  To group by another column, replace `status` in the key and the group's attribute (XSLT 1.0
  keys cannot take a parameter). Muenchian grouping: the first row of each key opens its group.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" media-type="application/xml" encoding="UTF-8"/>
  <xsl:key name="by-status" match="item" use="status"/>

  <xsl:template match="/*">
    <groups rows="{count(item)}">
      <xsl:for-each select="item[generate-id() = generate-id(key('by-status', status)[1])]">
        <xsl:sort select="status"/>
        <group status="{status}" count="{count(key('by-status', status))}">
          <xsl:copy-of select="key('by-status', status)"/>
        </group>
      </xsl:for-each>
    </groups>
  </xsl:template>
</xsl:stylesheet>
